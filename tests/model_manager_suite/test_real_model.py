"""Integration with the real gemma-3-270m Q4_K_M model (253 MB): load, generate, unload."""
from __future__ import annotations

from pathlib import Path

import pytest


@pytest.mark.slow
def test_gemma_load_generate_unload(make_suite, gemma_path: Path) -> None:
    suite = make_suite(dirs=[gemma_path.parent], n_ctx=512, n_threads=2)
    record = suite.registry.get("gemma-3-270m-q4_k_m")
    assert record.valid and record.architecture == "gemma3" and record.quantization == "Q4_K_M"
    info = suite.loader.load(record.id)
    assert info["n_ctx"] == 512 and info["estimate"]["weights_mb"] > 200
    chunks: list[str] = []
    out = suite.engine.complete(record.id, "The capital of France is", max_tokens=8, temperature=0.0,
                                on_token=chunks.append)
    assert out["completion_tokens"] > 0 and out["text"].strip() and "".join(chunks) == out["text"]
    chat = suite.engine.chat(record.id, [{"role": "user", "content": "Say hello."}], max_tokens=8,
                             temperature=0.0)
    assert chat["message"]["content"].strip()
    assert suite.loader.unload(record.id)
    assert suite.topics() == ["model.loaded", "model.unloaded"]
    stats = suite.engine.stats(record.id)
    assert stats["requests"] == 2 and stats["tokens_generated"] > 0 and stats["tokens_per_s"] > 0
    assert suite.store.get_model(record.id)["measured_memory_mb"] > 0
