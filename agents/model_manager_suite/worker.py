"""One loaded model = one ``ModelWorker``: a dedicated thread that owns the ``llama_cpp.Llama``.

Every call into a model runs on its own thread (llama.cpp runs at about half speed when calls hop
between threads), fed by a bounded queue: a full queue is ``bus.errors.Busy``. ``n_threads`` is always
passed explicitly (llama-cpp-python's default is one thread). The model is constructed, warmed up (one
token evaluated, so the weights are paged in before memory is measured) and freed on the worker thread.
"""
from __future__ import annotations

import logging
import queue
import threading
import time
from concurrent.futures import Future
from typing import Any, TypeVar
from collections.abc import Callable

from bus.errors import Busy, Timeout, Unavailable

log = logging.getLogger(__name__)
T = TypeVar("T")
_STOP = object()


class ModelLoadError(Unavailable):
    """llama.cpp could not load the model file (not retryable: the file or parameters are wrong)."""

    retryable = False


class WorkerClosed(Unavailable):
    """The model was unloaded (or is being swapped out) before the request ran."""


class ModelWorker:
    def __init__(self, model_id: str, path: str, *, n_ctx: int, n_threads: int, n_gpu_layers: int = 0,
                 main_gpu: int = 0, use_mmap: bool = True, queue_limit: int = 16, seed: int | None = None,
                 version: str | None = None, warmup: bool = True, chat_format: str | None = None):
        self.model_id, self.path, self.version = model_id, path, version
        self.n_ctx, self.n_threads, self.n_gpu_layers, self.main_gpu = n_ctx, n_threads, n_gpu_layers, main_gpu
        self._use_mmap, self._seed, self._warmup = use_mmap, seed, warmup
        self._queue: queue.Queue = queue.Queue(maxsize=max(1, queue_limit))
        self._lock = threading.Lock()
        self._pending = 0
        self._closing = False
        self._ready = threading.Event()
        self._load_error: BaseException | None = None
        self.cancel_all = threading.Event()       # set on a non-draining close: running jobs stop early
        self.llm: Any = None                       # only touched on the worker thread
        self.thread = threading.Thread(target=self._run, name=f"model-{model_id}", daemon=True)
        self.metadata: dict[str, str] = {}
        self.chat_format: str | None = chat_format

    # -- lifecycle ------------------------------------------------------------------------------
    def start(self, timeout: float | None = None) -> None:
        """Start the thread and wait until the model is loaded; raise ``ModelLoadError`` on failure."""
        self.thread.start()
        if not self._ready.wait(timeout):
            self.close(drain=False, timeout=0)
            raise Timeout(f"loading model {self.model_id} took longer than {timeout} s")
        if self._load_error is not None:
            self.thread.join(5)
            raise ModelLoadError(f"llama.cpp could not load model {self.model_id}: {self._load_error}")

    def close(self, drain: bool = True, timeout: float | None = 60.0) -> None:
        """Stop accepting requests; finish queued ones (``drain``) or fail them; free the model."""
        with self._lock:
            already = self._closing
            self._closing = True
        if not drain:
            self.cancel_all.set()
            self._fail_queued()
        if not already and self.thread.is_alive():
            self._queue.put(_STOP)
        if self.thread.is_alive() and threading.current_thread() is not self.thread:
            self.thread.join(timeout)
            if self.thread.is_alive():
                log.warning("model %s worker still busy after %s s; it will exit when done", self.model_id, timeout)

    @property
    def alive(self) -> bool:
        return self.thread.is_alive() and not self._closing

    @property
    def pending(self) -> int:
        """Requests queued or running."""
        return self._pending

    @property
    def idle(self) -> bool:
        return self._pending == 0

    # -- requests -------------------------------------------------------------------------------
    def submit(self, fn: Callable[[Any], T]) -> Future[T]:
        """Queue ``fn(llm)`` for the worker thread; ``Busy`` when the queue is full."""
        future: Future = Future()
        with self._lock:
            if self._closing or not self.thread.is_alive():
                raise WorkerClosed(f"model {self.model_id} is not loaded (unloaded or being swapped)")
            try:
                self._queue.put_nowait((fn, future))
            except queue.Full:
                raise Busy(f"model {self.model_id} has {self._queue.qsize()} requests queued",
                           retry_after_ms=200) from None
            self._pending += 1
        return future

    def call(self, fn: Callable[[Any], T], timeout: float | None = None) -> T:
        """``submit`` and wait; ``Timeout`` if the result is not there in time."""
        future = self.submit(fn)
        try:
            return future.result(timeout)
        except TimeoutError:
            raise Timeout(f"model {self.model_id} did not answer within {timeout} s") from None

    # -- worker thread --------------------------------------------------------------------------
    def _run(self) -> None:
        try:
            self._load()
        except BaseException as exc:  # reported by start()
            self._load_error = exc
            self._ready.set()
            return
        self._ready.set()
        try:
            while True:
                item = self._queue.get()
                if item is _STOP:
                    break
                self._execute(*item)
        finally:
            self._fail_queued()
            self._free()

    def _load(self) -> None:
        from llama_cpp import LLAMA_SPLIT_MODE_NONE, Llama

        kwargs: dict[str, Any] = dict(model_path=self.path, n_ctx=self.n_ctx, n_threads=self.n_threads,
                                      n_threads_batch=self.n_threads, n_gpu_layers=self.n_gpu_layers,
                                      main_gpu=self.main_gpu, split_mode=LLAMA_SPLIT_MODE_NONE,  # one GPU, budgeted
                                      use_mmap=self._use_mmap, verbose=False)
        if self._seed is not None:
            kwargs["seed"] = self._seed
        if self.chat_format:
            kwargs["chat_format"] = self.chat_format
        self.llm = Llama(**kwargs)
        self.n_ctx = self.llm.n_ctx()
        self.metadata = dict(self.llm.metadata or {})
        self.chat_format = self.llm.chat_format
        if self._warmup:
            bos = self.llm.token_bos()
            if bos >= 0:
                self.llm.eval([bos])
            self.llm.reset()

    def _execute(self, fn: Callable[[Any], Any], future: Future) -> None:
        try:
            if not future.set_running_or_notify_cancel():
                return
            try:
                future.set_result(fn(self.llm))
            except BaseException as exc:
                future.set_exception(exc)
        finally:
            with self._lock:
                self._pending -= 1

    def _fail_queued(self) -> None:
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return
            if item is _STOP:  # keep the stop marker for the worker loop
                self._queue.put_nowait(_STOP)
                return
            _fn, future = item
            with self._lock:
                self._pending -= 1
            if future.set_running_or_notify_cancel():
                future.set_exception(WorkerClosed(f"model {self.model_id} was unloaded before the request ran"))

    def _free(self) -> None:
        llm, self.llm = self.llm, None
        if llm is not None:
            try:
                llm.close()
            except Exception:
                log.exception("closing model %s failed", self.model_id)
        log.debug("model %s freed at %.3f", self.model_id, time.time())
