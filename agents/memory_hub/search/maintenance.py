"""Start-up, snapshots, compaction and embedding backfill of a ``SearchEngine``.

At start the FAISS snapshot is used only if its checksums hold AND its SQL fingerprint (count of rows
with an embedding, max ``updated_at``) equals the database's AND its live vector count equals that row
count; otherwise the index is rebuilt from the embeddings stored in SQL and a new snapshot is written.
A background thread (every ``maintenance_interval_s``) embeds rows written without an embedding,
drops vectors whose rows were deleted by other code paths, compacts tombstones and saves a snapshot
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

if TYPE_CHECKING:
    from agents.memory_hub.search.engine import SearchEngine

log = logging.getLogger(__name__)


class Maintainer:
    """Lifecycle helper owned by one ``SearchEngine``."""

    def __init__(self, engine: "SearchEngine", snapshot_dir: Path | None):
        self.engine = engine
        self.snapshot_dir = snapshot_dir
        self.ready = False
        self.status: dict[str, Any] = {}
        self._start_lock = threading.Lock()
        self._starting = threading.Event()
        self._changes = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # lifecycle ---------------------------------------------------------------------------------
    def ensure_started(self) -> None:
        """Start synchronously on first use, or refuse (retryable) while a background start runs."""
        if self.ready:
            return
        if self._starting.is_set():
            raise Unavailable("search index is loading", retry_after_ms=1000)
        self.start()

    def start_background(self) -> threading.Thread:
        """``start()`` on a thread; until it is done, searches and writes get ``Unavailable``."""
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
            e.embedder.start()
            e.keyword_engine = keyword.detect(e.engine)
            fts = keyword.check(e.engine, e.keyword_engine)
            source = "snapshot" if self._load_snapshot() else "sql"
            if source == "sql":
                self.rebuild()
                self.save_snapshot()
            self.status = {"source": source, "fts": fts, **e.index.stats(),
                           "seconds": round(time.monotonic() - began, 3)}
            log.info("search index ready: %s", self.status)
            self.ready = True
            self._start_thread()
            return self.status

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=60)
            self._thread = None
        if self.ready and self._changes:
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
        every = e.settings["snapshot_every"]
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
        return True

    def _reconcile(self) -> int:
        """Drop vectors whose rows no longer exist (deleted by code that did not call ``remove``)."""
        e = self.engine
        ids = e.index.ids()
        present = e.rows.existing(ids)
        gone = [m for m in ids if m not in present]
        return e.index.remove(gone) if gone else 0

    def _backfill(self) -> int:
        e = self.engine
        size = e.settings["backfill_batch"]
        done = 0
        while size and not self._stop.is_set():
            pending = e.rows.missing_embeddings(size)
            if not pending:
                break
            indexed = e.index_many(pending)
            done += len(indexed)
            if len(pending) < size or not indexed:
                break
        return done

    def _start_thread(self) -> None:
        interval = self.engine.settings["maintenance_interval_s"]
        if interval <= 0 or self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, args=(interval,), name="search-maintenance",
                                        daemon=True)
        self._thread.start()

    def _loop(self, interval: float) -> None:
        while not self._stop.wait(interval):
            try:
                self.run_once()
            except Exception:
                log.exception("search maintenance pass failed")
