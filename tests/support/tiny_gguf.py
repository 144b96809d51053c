"""Tiny but real GGUF models for tests, written with the ``gguf`` package in milliseconds.

``write_tiny_gguf`` writes a llama-architecture model with random weights (F16 matrices, F32 norms) and
a SentencePiece-style vocabulary (``<unk>``, ``<s>``, ``</s>``, the 256 byte tokens ``<0x00>``..``<0xFF>``
and a few word pieces), which llama-cpp-python loads and generates from. Different seeds give different
weights and hence different sha256 checksums.

``write_corrupt_gguf`` writes a truncated GGUF (valid start, cut in the middle of the metadata) and
``write_not_gguf`` a file with a .gguf name and other content.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from gguf import GGUFWriter
from gguf.constants import LlamaFileType, TokenType

WORD_PIECES = ("▁", "▁the", "▁a", "▁and", "▁to", "▁of", "▁hello", "▁world", "▁is", "▁it", "e", "t", "a", "o",
               "n", "s", "ing", "er", "ed", "▁I", "▁you", "▁model", "▁test", ".", ",", "!", "?")
N_SPECIAL = 3 + 256


def tiny_vocab(n_vocab: int) -> tuple[list[str], list[float], list[int]]:
    """Tokens, scores and token types of an SPM vocabulary of exactly ``n_vocab`` entries."""
    if n_vocab < N_SPECIAL + 1:
        raise ValueError(f"n_vocab must be at least {N_SPECIAL + 1}")
    tokens = ["<unk>", "<s>", "</s>"] + [f"<0x{b:02X}>" for b in range(256)]
    types = [TokenType.UNKNOWN, TokenType.CONTROL, TokenType.CONTROL] + [TokenType.BYTE] * 256
    pieces = list(WORD_PIECES)
    index = 0
    while len(pieces) < n_vocab - N_SPECIAL:
        pieces.append(f"▁w{index}")
        index += 1
    pieces = pieces[:n_vocab - N_SPECIAL]
    tokens += pieces
    types += [TokenType.NORMAL] * len(pieces)
    scores = [0.0] * N_SPECIAL + [-float(i) for i in range(len(pieces))]
    return tokens, scores, [int(t) for t in types]


def write_tiny_gguf(path: str | Path, *, arch: str = "llama", n_vocab: int = 320, n_embd: int = 64,
                    n_layer: int = 2, n_head: int = 4, n_head_kv: int = 2, n_ff: int = 128,
                    context_length: int = 512, seed: int = 0, name: str = "tiny-test-model") -> Path:
    """Write a loadable llama-architecture GGUF with random weights; returns the path."""
    if arch != "llama":
        raise ValueError("only the llama architecture is supported by write_tiny_gguf")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    writer = GGUFWriter(str(path), arch)
    _write_metadata(writer, n_vocab, n_embd, n_layer, n_head, n_head_kv, n_ff, context_length, name)
    for tensor_name, tensor in _tensors(rng, n_vocab, n_embd, n_layer, n_head, n_head_kv, n_ff):
        writer.add_tensor(tensor_name, tensor)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def _write_metadata(writer: GGUFWriter, n_vocab: int, n_embd: int, n_layer: int, n_head: int, n_head_kv: int,
                    n_ff: int, context_length: int, name: str) -> None:
    writer.add_name(name)
    writer.add_file_type(int(LlamaFileType.MOSTLY_F16))
    writer.add_context_length(context_length)
    writer.add_embedding_length(n_embd)
    writer.add_block_count(n_layer)
    writer.add_feed_forward_length(n_ff)
    writer.add_head_count(n_head)
    writer.add_head_count_kv(n_head_kv)
    writer.add_rope_dimension_count(n_embd // n_head)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_vocab_size(n_vocab)
    tokens, scores, types = tiny_vocab(n_vocab)
    writer.add_tokenizer_model("llama")
    writer.add_tokenizer_pre("default")
    writer.add_token_list(tokens)
    writer.add_token_scores(scores)
    writer.add_token_types(types)
    writer.add_unk_token_id(0)
    writer.add_bos_token_id(1)
    writer.add_eos_token_id(2)
    writer.add_add_bos_token(True)
    writer.add_add_eos_token(False)


def _tensors(rng: np.random.Generator, n_vocab: int, n_embd: int, n_layer: int, n_head: int, n_head_kv: int,
             n_ff: int):
    """(name, array) pairs; numpy shapes are (out, in) = GGUF ne reversed."""
    kv_dim = n_embd // n_head * n_head_kv

    def mat(rows: int, cols: int) -> np.ndarray:
        return (rng.standard_normal((rows, cols)) * 0.5 / np.sqrt(cols)).astype(np.float16)

    def norm() -> np.ndarray:
        return np.ones(n_embd, dtype=np.float32)

    yield "token_embd.weight", mat(n_vocab, n_embd)
    for i in range(n_layer):
        yield f"blk.{i}.attn_norm.weight", norm()
        yield f"blk.{i}.attn_q.weight", mat(n_embd, n_embd)
        yield f"blk.{i}.attn_k.weight", mat(kv_dim, n_embd)
        yield f"blk.{i}.attn_v.weight", mat(kv_dim, n_embd)
        yield f"blk.{i}.attn_output.weight", mat(n_embd, n_embd)
        yield f"blk.{i}.ffn_norm.weight", norm()
        yield f"blk.{i}.ffn_gate.weight", mat(n_ff, n_embd)
        yield f"blk.{i}.ffn_up.weight", mat(n_ff, n_embd)
        yield f"blk.{i}.ffn_down.weight", mat(n_embd, n_ff)
    yield "output_norm.weight", norm()
    yield "output.weight", mat(n_vocab, n_embd)


def write_corrupt_gguf(path: str | Path, **tiny_kwargs) -> Path:
    """A GGUF file cut in the middle of its metadata (a truncated download)."""
    path = Path(path)
    full = path.with_name(path.name + ".full")
    write_tiny_gguf(full, **tiny_kwargs)
    data = full.read_bytes()
    full.unlink()
    path.write_bytes(data[: len(data) // 50])
    return path


def write_truncated_data_gguf(path: str | Path, **tiny_kwargs) -> Path:
    """A GGUF whose header is intact but whose tensor data stops early."""
    path = Path(path)
    full = path.with_name(path.name + ".full")
    write_tiny_gguf(full, **tiny_kwargs)
    data = full.read_bytes()
    full.unlink()
    path.write_bytes(data[: len(data) - 4096])
    return path


def write_not_gguf(path: str | Path, content: bytes = b"this is not a model\n" * 10) -> Path:
    """A file named like a model that is something else."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    return path
