"""Replicas on one PostgreSQL: other replicas' writes to ``memories`` reach this replica's vector index.

Each MemoryHub keeps its own FAISS index. On PostgreSQL a trigger (migration ``0005_postgres_search``)
notifies channel ``memory_hub_changes`` with ``{"id", "by"}`` whenever a row is inserted, deleted or gets a
new embedding; ``ChangeFeed`` LISTENs on a connection of its own and, for every id written by another
replica (``by`` differs from this store's ``application_name``), reads the row back from SQL: an
embedding present -> added to (or replaced in) the index, the row gone -> removed. Batches are applied
as they arrive, so a memory added through one replica is found by semantic search on the other well
within a second (``tests/memory_hub/test_replicas.py`` measures it).

Why LISTEN/NOTIFY rather than a Redis stream: PostgreSQL sends the notification at commit, from the
database itself: never for a rolled-back write, never before the row is readable, for writes by any
code path or tool, and with no second system that must be up (the hub serves while Redis is down).
Its one weakness, notifications sent while the listener is disconnected are not kept, is covered by
reloading the index from SQL (the source of truth) after every reconnect. Search results are
confirmed against SQL anyway, so a deleted memory never surfaces, even before its notification.

    feed = ChangeFeed(search_engine, database_url, replica)   # replica: SqlStore.replica
    feed.start()          # a daemon thread; applies batches once the engine is ready
    feed.stats()          # {"connected", "applied", "reloads"}
    feed.stop()
"""
from __future__ import annotations

import json
import logging
import threading
from typing import TYPE_CHECKING, Any
from collections.abc import Iterable

from agents.memory_hub.stores.leader import psycopg_conninfo

if TYPE_CHECKING:
    from agents.memory_hub.search.engine import SearchEngine

log = logging.getLogger(__name__)

CHANNEL = "memory_hub_changes"         # keep in step with migration 0005_postgres_search
BATCH = 500                            # ids applied per SQL read
RECONNECT_S = 1.0


class ChangeFeed:
    def __init__(self, search: SearchEngine, database_url: str, replica: str) -> None:
        self.search = search
        self.conninfo = psycopg_conninfo(database_url)
        self.replica = replica
        self.connected = False
        self.applied = 0
        self.reloads = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="change-feed", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
            self._thread = None

    def stats(self) -> dict[str, Any]:
        return {"connected": self.connected, "applied": self.applied, "reloads": self.reloads}

    def apply(self, ids: Iterable[str]) -> int:
        """Bring the index in line with SQL for ``ids``; returns how many were looked at."""
        e = self.search
        ids = list(dict.fromkeys(ids))
        for start in range(0, len(ids), BATCH):
            chunk = ids[start:start + BATCH]
            with e.write_lock:
                found, matrix = e.rows.subset_embeddings([e.rows.table.c.memory_id.in_(chunk)])
                if found:
                    e.index.add(found, matrix)
                present = set(found)
                e.index.remove([m for m in chunk if m not in present])
            e.maintainer.changed(len(chunk))
        self.applied += len(ids)
        return len(ids)

    # internals ---------------------------------------------------------------------------------
    def _run(self) -> None:
        import psycopg

        first = True
        while not self._stop.is_set():
            try:
                with psycopg.connect(self.conninfo, autocommit=True, connect_timeout=5,
                                     application_name=f"{self.replica} feed") as conn:
                    conn.execute(f"LISTEN {CHANNEL}")
                    self.connected = True
                    if not self._wait_until_ready():
                        return
                    if not first:           # notifications sent while disconnected are gone: reload
                        self.search.rebuild()
                        self.reloads += 1
                    first = False
                    self._follow(conn)
            except Exception as exc:  # psycopg.Error, OSError: reconnect and reload
                log.warning("change feed disconnected (%s); reconnecting", exc)
            finally:
                self.connected = False
            self._stop.wait(RECONNECT_S)

    def _follow(self, conn: Any) -> None:
        while not self._stop.is_set():
            ids = []
            for note in conn.notifies(timeout=0.2, stop_after=BATCH):
                memory_id = self._foreign_id(note.payload)
                if memory_id is not None:
                    ids.append(memory_id)
            if ids:
                self.apply(ids)

    def _foreign_id(self, payload: str) -> str | None:
        try:
            change = json.loads(payload)
        except ValueError:
            log.warning("change feed: unreadable notification %r", payload[:200])
            return None
        return None if change.get("by") == self.replica else change.get("id")

    def _wait_until_ready(self) -> bool:
        while not self.search.maintainer.ready:
            if self._stop.wait(0.1):
                return False
        return True
