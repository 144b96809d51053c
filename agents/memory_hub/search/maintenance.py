"""Start-up, snapshots, compaction and embedding backfill of a ``SearchEngine``.

At start the model loads on the embedder's thread while the index is loaded: the FAISS snapshot is used
only if its checksums hold AND its SQL fingerprint (count of rows with an embedding, max ``updated_at``)
equals the database's AND its live vector count equals that row count; otherwise the index is rebuilt
from the embeddings stored in SQL and a new snapshot is written. Then every row still without an
embedding (written while the model loaded, or before a crash) is embedded, and only then is the engine
ready: a write arriving during the start is not indexed by its writer (``accept_write`` says False and
notes it) but by this catch-up, which repeats until no write slipped in since its last pass.
Callers wait for readiness up to their deadline (``ensure_started``), then get a retryable
``Unavailable``. A background thread (every ``maintenance_interval_s``) embeds rows written without an
embedding, drops vectors whose rows were deleted by other code paths, compacts tombstones and saves a snapshot
every ``snapshot_every`` changes; ``close()`` saves a final one.
"""
from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from agents.memory_hub.search import keyword
from bus.errors import Unavailable
from bus.periodic import PeriodicTask

if TYPE_CHECKING:
    from agents.memory_hub.search.engine import SearchEngine

log = logging.getLogger(__name__)


CATCH_UP_BATCH = 256
RETRY_AFTER_MS = 1000


class Maintainer:
    """Lifecycle helper owned by one ``SearchEngine``.

    ``default_wait_s``: how long a call without a deadline waits for a background start.
    """

    def __init__(self, engine: SearchEngine, snapshot_dir: Path | None, default_wait_s: float = 30.0):
        self.engine = engine
        self.snapshot_dir = snapshot_dir
        self.default_wait_s = default_wait_s
        self.status: dict[str, Any] = {}
        self._ready = threading.Event()
        self._gate = threading.Lock()          # orders "a write was deferred" against "ready"
        self._deferred = False
        self._start_lock = threading.Lock()
        self._starting = threading.Event()
        self._changes = 0
        self._saved: dict[str, Any] | None = None     # fingerprint of the snapshot on disk, when known
        self._stop = threading.Event()          # also ends a backfill early at close
        self._task: PeriodicTask | None = None

    # lifecycle ---------------------------------------------------------------------------------
    @property
    def ready(self) -> bool:
        return self._ready.is_set()

    def wait_ready(self, timeout: float | None = None) -> bool:
        """Block until ready or until no start is running (or ``timeout``); True when ready."""
        until = None if timeout is None else time.monotonic() + timeout
        while not self._ready.is_set() and self._starting.is_set():
            left = 0.1 if until is None else min(0.1, until - time.monotonic())
            if left <= 0:
                break
            self._ready.wait(left)
        return self._ready.is_set()

    def ensure_started(self, deadline: float | None = None) -> None:
        """Return once ready: start synchronously on first use, or wait for a background start until
        ``deadline`` (``time.monotonic()``; default ``default_wait_s`` from now), then ``Unavailable``."""
        if self._ready.is_set():
            return
        if self._starting.is_set():
            wait = self.default_wait_s if deadline is None else deadline - time.monotonic()
            if self.wait_ready(max(0.0, wait)):
                return
            if self._starting.is_set():
                raise Unavailable("search index is loading", retry_after_ms=RETRY_AFTER_MS)
        self.start()

    def accept_write(self) -> bool:
        """True when a write may be indexed now (starting synchronously on first use); False while a
        background start runs: the start's catch-up indexes the row before the engine is ready."""
        with self._gate:
            if self._ready.is_set():
                return True
            if self._starting.is_set():
                self._deferred = True
                return False
        self.start()
        return True

    def start_background(self) -> threading.Thread:
        """``start()`` on a thread; calls wait for it (up to their deadline), writes are caught up."""
        self._starting.set()

        def run() -> None:
            try:
                self.start()
            except Exception:
                log.exception("search engine failed to start; the next call retries")
            finally:
                self._starting.clear()

        thread = threading.Thread(target=run, name="search-start", daemon=True)
        thread.start()
        return thread

    def start(self) -> dict[str, Any]:
        with self._start_lock:
            if self.ready:
                return self.status
            began = time.monotonic()
            e = self.engine
            e.embedder.start(wait=False)        # the model loads on its own thread meanwhile
            e.keyword_engine = keyword.detect(e.engine)
            fts = keyword.check(e.engine, e.keyword_engine)
            source = "snapshot" if self._load_snapshot() else "sql"
            if source == "sql":
                self.rebuild()
            e.embedder.start()
            caught_up = self._catch_up()
            if source == "sql" or caught_up:
                self.save_snapshot()
            self.status = {"source": source, "fts": fts, "caught_up": caught_up, **e.index.stats(),
                           "seconds": round(time.monotonic() - began, 3)}
            log.info("search index ready: %s", self.status)
            self._start_thread()
            return self.status

    def close(self) -> None:
        self._stop.set()
        if self._task is not None:
            self._task.stop(timeout=60)
            self._task = None
        # other writes (importance, tiers, access counts) move max(updated_at) without touching a vector:
        # the snapshot is re-saved for them too, or the next start would find it stale and rebuild
        if self.ready and (self._changes or self._saved != self._fingerprint_or_none()):
            self.save_snapshot()

    def changed(self, count: int) -> None:
        self._changes += count

    # index state -------------------------------------------------------------------------------
    def rebuild(self) -> int:
        e = self.engine
        with e.write_lock:
            ids: list[str] = []
            parts: list[np.ndarray] = []
            for batch_ids, matrix in e.rows.iter_embeddings():
                ids.extend(batch_ids)
                parts.append(matrix)
            vectors = np.vstack(parts) if parts else np.zeros((0, e.index.dim), dtype=np.float32)
            e.index.rebuild(ids, vectors)
        log.info("vector index rebuilt from SQL: %d vectors (%s)", len(ids), e.index.kind)
        return len(ids)

    def save_snapshot(self) -> bool:
        """Write a snapshot if the index matches SQL; False when there is nothing to save to or it does not."""
        e = self.engine
        if self.snapshot_dir is None:
            return False
        with e.write_lock:
            fingerprint = e.rows.fingerprint()
            if fingerprint["embedded"] != len(e.index):
                self._reconcile()
                fingerprint = e.rows.fingerprint()
            if fingerprint["embedded"] != len(e.index):
                log.info("snapshot skipped: %d vectors vs %d embedded rows", len(e.index), fingerprint["embedded"])
                return False
            changes, self._changes = self._changes, 0
            try:
                e.index.save(self.snapshot_dir, fingerprint)
                self._saved = fingerprint
            except OSError:
                self._changes += changes
                log.exception("could not write the search snapshot to %s", self.snapshot_dir)
                return False
        return True

    def run_once(self) -> dict[str, Any]:
        """One maintenance pass (also called by the background thread)."""
        e = self.engine
        backfilled = self._backfill()
        compacted = e.index.needs_compaction() and e.index.compact()
        every = e.settings.snapshot_every
        saved = bool(every) and self._changes >= every and self.save_snapshot()
        return {"backfilled": backfilled, "compacted": compacted, "snapshot": saved}

    # internals ---------------------------------------------------------------------------------
    def _load_snapshot(self) -> bool:
        e = self.engine
        if self.snapshot_dir is None:
            return False
        saved = e.index.load(self.snapshot_dir)
        if saved is None:
            return False
        current = e.rows.fingerprint()
        if saved != current or len(e.index) != current["embedded"]:
            log.info("search snapshot is stale (%s vs SQL %s); rebuilding", saved, current)
            return False
        self._saved = saved
        return True

    def _fingerprint_or_none(self) -> dict[str, Any] | None:
        try:
            return self.engine.rows.fingerprint()
        except Exception as exc:  # SQL gone at shutdown: keep the snapshot on disk as it is
            log.warning("no SQL fingerprint at close (%r); snapshot left as it was", exc)
            return self._saved

    def _reconcile(self) -> int:
        """Drop vectors whose rows no longer exist (deleted by code that did not call ``remove``)."""
        e = self.engine
        ids = e.index.ids()
        present = e.rows.existing(ids)
        gone = [m for m in ids if m not in present]
        return e.index.remove(gone) if gone else 0

    def _catch_up(self) -> int:
        """Embed every row left without an embedding, then become ready unless a write was deferred
        meanwhile (then go again: that row is committed, so the next pass sees it)."""
        done = 0
        while True:
            done += self._backfill(max(CATCH_UP_BATCH, self.engine.settings.backfill_batch))
            with self._gate:
                if not self._deferred:
                    self._ready.set()
                    return done
                self._deferred = False

    def _backfill(self, size: int | None = None) -> int:
        e = self.engine
        size = e.settings.backfill_batch if size is None else size
        done = 0
        while size and not self._stop.is_set():
            pending = e.rows.missing_embeddings(size)
            if not pending:
                break
            indexed = e.index_now(pending)
            done += len(indexed)
            if len(pending) < size or not indexed:
                break
        return done

    def _start_thread(self) -> None:
        interval = self.engine.settings.maintenance_interval_s
        if interval <= 0 or self._task is not None:
            return
        self._stop.clear()
        self._task = PeriodicTask("search-maintenance", interval, self.run_once)
        self._task.start()
