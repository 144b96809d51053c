"""GGUF header reader: metadata of a tiny model, typed errors for broken files, the real gemma header."""
from __future__ import annotations

from pathlib import Path

import pytest

from agents.model_manager_suite.gguf_header import ArraySummary, GGUFError, read_header
from bus.errors import BadRequest
from tests.support.tiny_gguf import (write_corrupt_gguf, write_not_gguf, write_tiny_gguf,
                                     write_truncated_data_gguf)


def test_tiny_header_metadata(tmp_path: Path) -> None:
    path = write_tiny_gguf(tmp_path / "t.gguf", n_vocab=300, n_embd=32, n_layer=3, n_head=4, n_head_kv=2,
                           n_ff=64, context_length=1024, name="unit tiny")
    header = read_header(path)
    assert header.version == 3
    assert header.architecture == "llama"
    assert header.name == "unit tiny"
    assert header.quantization == "F16"
    assert header.context_length == 1024
    assert header.embedding_length == 32
    assert header.block_count == 3
    assert header.head_count == 4 and header.head_count_kv == 2
    assert header.vocab_size == 300
    assert header.tensor_count == 2 + 3 * 9 + 1
    # token_embd + output (300x32 each), per layer: 2 norms + q,o (32x32) + k,v (16x32) + gate,up,down (64x32)
    per_layer = 2 * 32 + 2 * 32 * 32 + 2 * 16 * 32 + 3 * 64 * 32
    assert header.parameter_count == 2 * 300 * 32 + 3 * per_layer + 32
    assert isinstance(header.metadata["tokenizer.ggml.tokens"], ArraySummary)
    assert header.metadata["tokenizer.ggml.model"] == "llama"
    assert header.kv_dims() == (16, 16)
    assert header.kv_cache_bytes(100) == 3 * 100 * (16 + 16) * 2
    assert header.data_offset + header.data_size == path.stat().st_size


def test_summary_is_json_able(tmp_path: Path) -> None:
    import json

    header = read_header(write_tiny_gguf(tmp_path / "t.gguf"))
    summary = json.loads(json.dumps(header.summary()))
    assert summary["metadata"]["tokenizer.ggml.tokens"] == {"array": "string", "count": 320}
    assert summary["quantization"] == "F16"


@pytest.mark.parametrize("maker, reason", [
    (write_corrupt_gguf, "truncated"),
    (write_truncated_data_gguf, "truncated: tensor data"),
    (write_not_gguf, "not a GGUF file"),
])
def test_broken_files_raise_typed_error(tmp_path: Path, maker, reason: str) -> None:
    path = maker(tmp_path / "broken.gguf")
    with pytest.raises(GGUFError) as info:
        read_header(path)
    assert reason in info.value.reason
    assert isinstance(info.value, BadRequest)
    assert str(path) in info.value.message


def test_empty_and_missing_files(tmp_path: Path) -> None:
    empty = tmp_path / "empty.gguf"
    empty.write_bytes(b"")
    with pytest.raises(GGUFError, match="not a GGUF file"):
        read_header(empty)
    short = tmp_path / "short.gguf"
    short.write_bytes(b"GGUF\x03\x00")
    with pytest.raises(GGUFError, match="truncated"):
        read_header(short)
    with pytest.raises(GGUFError, match="cannot read file"):
        read_header(tmp_path / "missing.gguf")


def test_every_prefix_of_a_header_is_rejected_cleanly(tmp_path: Path) -> None:
    data = write_tiny_gguf(tmp_path / "full.gguf").read_bytes()
    cut = tmp_path / "cut.gguf"
    for length in list(range(0, 200, 7)) + list(range(200, len(data), 997)):
        cut.write_bytes(data[:length])
        with pytest.raises(GGUFError):
            read_header(cut)


@pytest.mark.slow
def test_real_gemma_header(gemma_path: Path) -> None:
    header = read_header(gemma_path)
    assert header.architecture == "gemma3"
    assert header.quantization == "Q4_K_M"
    assert header.context_length == 32768
    assert header.block_count == 18
    assert header.vocab_size == 262144
    assert 250_000_000 < header.parameter_count < 300_000_000
    assert header.data_offset + header.data_size <= gemma_path.stat().st_size
