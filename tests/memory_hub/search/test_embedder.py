"""Embedder: one worker thread, normalised float32 vectors, concurrent callers coalesced correctly."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from agents.memory_hub.search import Embedder
from bus.errors import BadRequest, Unavailable
from tests.data.make_distractors import eval_pairs
from tests.memory_hub.search.corpus import sentences


def test_vectors_are_normalised_float32(embedder):
    out = embedder.encode(["hello world", "the cat sat on the mat"])
    assert out.shape == (2, 384) and out.dtype == np.float32
    assert np.allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)
    assert embedder.encode([]).shape == (0, 384)


def test_concurrent_callers_get_their_own_vectors(embedder):
    texts = sentences(48, seed=8)
    alone = embedder.encode(texts)
    with ThreadPoolExecutor(max_workers=12) as pool:
        together = list(pool.map(lambda t: embedder.encode([t])[0], texts))
    assert np.allclose(np.vstack(together), alone, atol=1e-4)


def test_query_cache_returns_the_same_vector(embedder):
    first = embedder.encode_query("where are my keys")
    assert embedder.encode_query("where are my keys") is first
    assert np.allclose(first, embedder.encode(["where are my keys"])[0], atol=1e-5)


def test_non_strings_are_refused(embedder):
    with pytest.raises(BadRequest):
        embedder.encode(["fine", 3])


def test_a_missing_model_is_unavailable(tmp_path):
    broken = Embedder(str(tmp_path / "no-model-here"))
    with pytest.raises(Unavailable):
        broken.start()
    with pytest.raises(Unavailable):
        broken.encode(["x"])
    broken.close()


def test_onnx_backend_matches_torch_on_the_eval_set_and_exports_once(tmp_path, embedder):
    texts = [t for p in eval_pairs() for t in (p["fact"], p["question"])]
    onnx = Embedder(threads=1, backend="onnx", cache_dir=tmp_path / "onnx")
    onnx.start()
    try:
        assert onnx.backend_in_use == "onnx"
        together = np.sum(onnx.encode(texts) * embedder.encode(texts), axis=1)
        one_by_one = [float(onnx.encode_query(t) @ embedder.encode_query(t)) for t in texts[:20]]
        assert together.min() >= 0.999 and min(one_by_one) >= 0.999
    finally:
        onnx.close()
    exported = (tmp_path / "onnx" / "model.onnx").stat().st_mtime_ns
    again = Embedder(threads=1, backend="onnx", cache_dir=tmp_path / "onnx")
    again.start()
    assert again.backend_in_use == "onnx" and (tmp_path / "onnx" / "model.onnx").stat().st_mtime_ns == exported
    again.close()


def test_onnx_backend_without_a_cache_dir_runs_on_torch():
    fallback = Embedder(threads=1, backend="onnx")
    fallback.start()
    assert fallback.backend_in_use == "torch" and fallback.encode(["x"]).shape == (1, 384)
    fallback.close()
    with pytest.raises(ValueError):
        Embedder(backend="tensorflow")
