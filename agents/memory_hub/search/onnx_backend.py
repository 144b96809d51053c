"""The embedding model on ONNX Runtime: the same all-MiniLM-L6-v2, exported once from the local folder.

``OnnxEncoder.open(model, cache_dir, threads)`` takes a loaded ``SentenceTransformer`` (its tokenizer and
transformer), exports transformer + mean pooling + L2 normalisation to ``cache_dir/model.onnx`` with
``torch.onnx.export`` unless an export of the same model files is already there (``meta.json`` holds
their sizes and mtimes), and opens two ONNX Runtime sessions: one intra-op thread for queries, ``threads``
for bulk batches. It then checks the export against torch on probe sentences and raises
``OnnxMismatch`` when any cosine is below ``MIN_COSINE`` (the caller keeps torch then). No download:
everything comes from the model folder. ``encode(texts, bulk)`` returns unit float32 vectors.

Measured here (tests/bench_search.py, same run): a single query 2x faster than torch, batches ~1.5x.
"""
from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

MIN_COSINE = 0.999
INPUTS = ("input_ids", "attention_mask", "token_type_ids")
PROBES = ["How do I open where the car is parked?", "The garage door code is 4471.", "ok",
          "A longer memory: grandma's rice pudding uses lemon zest, cinnamon and a pinch of salt, simmered slowly "
          "for forty minutes while stirring, then cooled on the kitchen windowsill before dinner."]


class OnnxMismatch(RuntimeError):
    """The exported model does not reproduce the torch embeddings."""


class OnnxEncoder:
    def __init__(self, tokenizer: Any, max_length: int, small: Any, bulk: Any, batch_size: int):
        self.tokenizer = tokenizer
        self.max_length = max_length
        self._small, self._bulk = small, bulk
        self.batch_size = batch_size

    @classmethod
    def open(cls, model: Any, model_path: str, cache_dir: Path, threads: int, batch_size: int) -> OnnxEncoder:
        import onnxruntime as ort

        onnx_file = _export_once(model, model_path, cache_dir)
        sessions = []
        for count in (1, threads):
            options = ort.SessionOptions()
            options.intra_op_num_threads = count
            options.inter_op_num_threads = 1
            sessions.append(ort.InferenceSession(str(onnx_file), options, providers=["CPUExecutionProvider"]))
        encoder = cls(model.tokenizer, int(model.max_seq_length), sessions[0], sessions[1], batch_size)
        encoder.verify(model)
        return encoder

    def encode(self, texts: list[str], bulk: bool) -> np.ndarray:
        """Unit vectors of ``texts`` (batches of similar length, as sentence-transformers does)."""
        session = self._bulk if bulk else self._small
        order = np.argsort([-len(t) for t in texts], kind="stable")
        out = np.empty((len(texts), 384), dtype=np.float32)
        for start in range(0, len(texts), self.batch_size):
            chosen = order[start:start + self.batch_size]
            enc = self.tokenizer([texts[i] for i in chosen], padding=True, truncation=True,
                                 max_length=self.max_length, return_tensors="np")
            feed = {name: np.asarray(enc[name], dtype=np.int64) for name in INPUTS}
            out[chosen] = session.run(None, feed)[0]
        return out

    def verify(self, model: Any) -> float:
        """Smallest cosine between these and the torch embeddings of ``PROBES``; ``OnnxMismatch`` if too low."""
        import torch

        with torch.inference_mode():
            expected = model.encode(PROBES, convert_to_numpy=True, normalize_embeddings=True, show_progress_bar=False)
        worst = float(np.min(np.sum(self.encode(PROBES, bulk=False) * expected, axis=1)))
        if worst < MIN_COSINE:
            raise OnnxMismatch(f"ONNX embeddings differ from torch (cosine {worst:.5f} < {MIN_COSINE})")
        return worst


def _fingerprint(model_path: str) -> dict[str, list[int]]:
    found = {}
    for path in sorted(Path(model_path).rglob("*")):
        if path.is_file() and path.suffix in (".safetensors", ".bin", ".json", ".txt"):
            stat = path.stat()
            found[str(path.relative_to(model_path))] = [stat.st_size, int(stat.st_mtime)]
    return found


def _export_once(model: Any, model_path: str, cache_dir: Path) -> Path:
    onnx_file, meta_file = cache_dir / "model.onnx", cache_dir / "meta.json"
    fingerprint = {"model_path": str(model_path), "files": _fingerprint(model_path)}
    try:
        if onnx_file.exists() and json.loads(meta_file.read_text()) == fingerprint:
            return onnx_file
    except (OSError, ValueError):
        pass
    cache_dir.mkdir(parents=True, exist_ok=True)
    meta_file.unlink(missing_ok=True)
    tmp = cache_dir / f"model.onnx.{os.getpid()}.tmp"
    _export(model, tmp)
    os.replace(tmp, onnx_file)
    meta_file.write_text(json.dumps(fingerprint))
    log.info("embedding model exported to ONNX at %s", onnx_file)
    return onnx_file


def _export(model: Any, target: Path) -> None:
    import warnings

    import torch

    class Pooled(torch.nn.Module):
        """Transformer, mean pooling over the attention mask, L2 normalisation (what the model's modules do)."""

        def __init__(self, transformer: torch.nn.Module):
            super().__init__()
            self.transformer = transformer

        def forward(self, input_ids, attention_mask, token_type_ids):
            hidden = self.transformer(input_ids=input_ids, attention_mask=attention_mask,
                                      token_type_ids=token_type_ids).last_hidden_state
            weights = attention_mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * weights).sum(1) / weights.sum(1).clamp(min=1e-9)
            return torch.nn.functional.normalize(pooled, p=2, dim=1)

    sample = model.tokenizer(["a short sample", "another sample sentence"], padding=True, return_tensors="pt")
    axes = {name: {0: "batch", 1: "tokens"} for name in INPUTS}
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(Pooled(model[0].auto_model).eval(), tuple(sample[name] for name in INPUTS), str(target),
                          input_names=list(INPUTS), output_names=["embedding"],
                          dynamic_axes={**axes, "embedding": {0: "batch"}}, opset_version=17, dynamo=False)
