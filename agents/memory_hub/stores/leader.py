"""Which MemoryHub replica runs the once-only background work (session expiry, memory lifecycle, the
context monitor's SQL poll, embedding backfill).

On PostgreSQL the leader is the replica holding a session-level advisory lock (``LEADER_LOCK_KEY``) on a
connection of its own. PostgreSQL releases the lock the moment that connection ends, so when the leader
dies (``kill -9`` included: the kernel closes its socket) or loses the database, the next
``is_leader()`` call of another replica takes the lock: the work moves within one task interval. On
SQLite (one hub per file) every store is the leader.

    leadership = Leadership(url, name)   # name: shown as the lock holder's application_name
    if leadership.is_leader(): ...       # cheap: one ``SELECT 1`` while held, one try-lock while not
    leadership.close()                   # releases the lock (another replica takes over)
"""
from __future__ import annotations

import contextlib
import logging
import threading
from typing import Any

from sqlalchemy.engine import make_url

log = logging.getLogger(__name__)

LEADER_LOCK_KEY = 0x6D656D68756202        # "memhub" + 2 (the writers' lock is + 1, see sql.py)


def psycopg_conninfo(database_url: str) -> str:
    """A libpq connection string for an SQLAlchemy ``postgresql+psycopg://`` URL."""
    return make_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False)


class Leadership:
    def __init__(self, database_url: str, name: str) -> None:
        self.postgres = make_url(database_url).get_backend_name() == "postgresql"
        self.conninfo = psycopg_conninfo(database_url) if self.postgres else ""
        self.name = name
        self._conn: Any = None
        self._held = False
        self._lock = threading.Lock()

    def is_leader(self) -> bool:
        if not self.postgres:
            return True
        with self._lock:
            try:
                self._refresh()
            except Exception as exc:  # psycopg.Error and OSError: no database, no leadership
                if self._held:
                    log.warning("leadership lost: %s", exc)
                self._drop()
            return self._held

    def close(self) -> None:
        with self._lock:
            self._drop()

    def _refresh(self) -> None:
        import psycopg

        if self._conn is None or self._conn.closed:
            self._conn = psycopg.connect(self.conninfo, autocommit=True, connect_timeout=5,
                                         application_name=f"{self.name} leader")
            self._held = False
        if self._held:
            self._conn.execute("SELECT 1")        # the lock lives as long as this connection does
            return
        self._held = bool(self._conn.execute("SELECT pg_try_advisory_lock(%s)", (LEADER_LOCK_KEY,)).fetchone()[0])
        if self._held:
            log.info("this replica (%s) now runs the once-only background work", self.name)

    def _drop(self) -> None:
        conn, self._conn, self._held = self._conn, None, False
        if conn is not None:
            with contextlib.suppress(Exception):   # already broken
                conn.close()
