"""Idempotent native calls: a request repeated with the same ``idempotency_key`` runs once.

A client that timed out does not know whether its write ran (the hub may have been cut off, not down). It
retries with the same ``args.idempotency_key``; the dispatcher (``bus/dispatch.py``) asks this store first:

* first time (or the key is older than ``window_s``): a ``running`` row is inserted, the action runs, and
  on success its result is stored (``done``); on an error reply the row is removed, so a retry runs again
  (an error reply means the action did not write);
* key ``done``: the stored result is returned and the action does not run (nothing is written twice);
* key ``running`` (the first attempt is still executing): the caller waits for it, up to its deadline;
* key used before for a different agent/action/arguments: ``conflict``.

Keys are scoped by the caller's token subject, so two clients cannot see each other's results.

Why SQL, in the hub's own database: it is where the writes go (an outage of the store is an outage of
the writes too), it survives ``kill -9`` and restarts (a Redis-only record would be lost with Redis, exactly
when a client retries), it is shared by hubs on one PostgreSQL, and it needs no new component. The table
(one per hub, so both hubs may share a database) is created by each hub's Alembic migration. Rows left
``running`` by a killed hub are released at start (``release_running``) and after ``running_timeout_s``.
"""
from __future__ import annotations

import hashlib
import json
import threading
import time
from dataclasses import dataclass
from typing import Any
from collections.abc import Callable

import msgpack
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from bus.config import HubSection
from bus.log import get_logger

log = get_logger("bus.idempotency")

MAX_KEY_LENGTH = 200
PURGE_EVERY = 500                          # begins between two purges of expired keys


def idempotency_table(name: str, metadata: sa.MetaData | None = None) -> sa.Table:
    """The table layout (the migrations create it with these columns). Settings: ``hub.idempotency_*``."""
    return sa.Table(
        name, metadata or sa.MetaData(),
        sa.Column("subject", sa.String(200), primary_key=True),
        sa.Column("idem_key", sa.String(MAX_KEY_LENGTH), primary_key=True),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),          # running | done
        sa.Column("result", sa.LargeBinary(), nullable=True),       # msgpack of the reply's result
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("finished_at", sa.Float(), nullable=True),
    )


def fingerprint(agent: str, action: str, args: dict[str, Any]) -> str:
    canonical = json.dumps([agent, action, args], sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Begin:
    state: str                 # new | done | running | mismatch
    result: Any = None


class IdempotencyStore:
    def __init__(self, engine: Engine, table_name: str, window_s: float, running_timeout_s: float,
                 clock: Callable[[], float] = time.time):
        # On SQLite a claim reads then inserts: begun DEFERRED, two concurrent claims of one key both read,
        # and the second's upgrade to a write lock fails at once ("database is locked"), whatever the busy
        # timeout. The hubs' engines (``agents/sql_engine.py``) begin IMMEDIATE when asked through this
        # execution option, so claims queue on the lock instead; other databases ignore it.
        self.engine = engine.execution_options(sqlite_begin="IMMEDIATE")
        self.table = idempotency_table(table_name)
        self.window_s = float(window_s)
        self.running_timeout_s = float(running_timeout_s)
        self.clock = clock
        self._begins = 0
        self._lock = threading.Lock()

    def begin(self, subject: str, key: str, print_: str) -> Begin:
        """Claim ``key`` for a first run, or say what became of the earlier one."""
        self._maybe_purge()
        for _ in range(3):                  # a concurrent insert of the same key: read it again
            try:
                return self._begin_once(subject, key, print_)
            except IntegrityError:
                continue
        return Begin("running")

    def finish(self, subject: str, key: str, result: Any) -> None:
        blob = msgpack.packb(result, use_bin_type=True, default=_packable)
        t = self.table
        with self.engine.begin() as conn:
            conn.execute(t.update().where(t.c.subject == subject, t.c.idem_key == key)
                         .values(state="done", result=blob, finished_at=self.clock()))

    def abandon(self, subject: str, key: str) -> None:
        t = self.table
        with self.engine.begin() as conn:
            conn.execute(t.delete().where(t.c.subject == subject, t.c.idem_key == key, t.c.state == "running"))

    def release_running(self) -> int:
        """At start: rows left ``running`` by a hub that died mid-call (their replies were never sent)."""
        t = self.table
        with self.engine.begin() as conn:
            return conn.execute(t.delete().where(t.c.state == "running")).rowcount or 0

    def purge(self) -> int:
        t = self.table
        with self.engine.begin() as conn:
            return conn.execute(t.delete().where(t.c.created_at < self.clock() - self.window_s)).rowcount or 0

    def _begin_once(self, subject: str, key: str, print_: str) -> Begin:
        t, now = self.table, self.clock()
        where = (t.c.subject == subject, t.c.idem_key == key)
        with self.engine.begin() as conn:
            row = conn.execute(sa.select(t.c.fingerprint, t.c.state, t.c.result, t.c.created_at)
                               .where(*where)).first()
            if row is not None and self._expired(row, now):
                conn.execute(t.delete().where(*where))
                row = None
            if row is None:
                conn.execute(t.insert().values(subject=subject, idem_key=key, fingerprint=print_, state="running",
                                               created_at=now))
                return Begin("new")
        if row.fingerprint != print_:
            return Begin("mismatch")
        if row.state == "done":
            return Begin("done", msgpack.unpackb(row.result, raw=False) if row.result is not None else None)
        return Begin("running")

    def _expired(self, row: Any, now: float) -> bool:
        age = now - float(row.created_at)
        return age >= self.window_s or (row.state == "running" and age >= self.running_timeout_s)

    def _maybe_purge(self) -> None:
        with self._lock:
            self._begins += 1
            due = self._begins % PURGE_EVERY == 1
        if due:
            try:
                self.purge()
            except Exception as exc:        # a purge is housekeeping: the next one retries
                log.warning("idempotency_purge_failed", error=repr(exc))


def _packable(obj: Any) -> Any:
    if isinstance(obj, (set, tuple)):
        return list(obj)
    if hasattr(obj, "isoformat"):
        return obj.isoformat()
    return str(obj)


def open_idempotency(engine: Engine, table_name: str, hub: HubSection) -> IdempotencyStore:
    """The hub's store (settings ``hub.idempotency_window_s`` / ``_running_s``), with stale claims released."""
    store = IdempotencyStore(engine, table_name, hub.idempotency_window_s, hub.idempotency_running_s)
    released = store.release_running()
    if released:
        log.warning("idempotency_claims_released", count=released, reason="left running by a previous run")
    return store
