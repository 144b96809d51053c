"""SQL store: the engine and transaction scopes behind every MemoryHub table.

``SqlStore(database_url=None, data_dir=...)`` opens ``sqlite:///<data_dir>/memory_hub.db`` by default; the
other tested backend is PostgreSQL (``postgresql+psycopg://user:pass@host:5432/db``, driver from the
``postgres`` extra). The schema comes from Alembic only: ``store.migrate()`` (or
``migrations.runner.upgrade_to_head``) before first use.

The engine comes from ``agents/sql_engine.py`` (``sql`` settings section: WAL, ``synchronous`` FULL by
default, ``busy_timeout``, ``foreign_keys=ON``, explicit ``BEGIN``): ``transaction()`` begins ``IMMEDIATE``
(takes the write lock up front, so concurrent writers queue on ``busy_timeout`` instead of failing on a lock
upgrade), and ``session()`` begins ``DEFERRED`` (readers never block anyone in WAL mode).

PostgreSQL keeps the same one-writer-at-a-time semantics: a write scope (any connection carrying the
``sqlite_begin="IMMEDIATE"`` execution option, as ``transaction()`` does) first takes one transaction-scoped
advisory lock (``pg_advisory_xact_lock(WRITE_LOCK_KEY)``), so read-modify-write code that is correct under
SQLite's single writer stays correct under READ COMMITTED, across every replica sharing the database.
Readers never wait for it. Each PostgreSQL connection is named after this replica
(``application_name`` = ``replica``, which the change feed uses to skip its own writes), and
``is_leader()`` says whether this replica runs the once-only background work (``stores/leader.py``;
always true on SQLite).

Errors leaving a scope are typed (``bus.errors``): ``IntegrityError`` -> ``Conflict``, a locked/busy
database and a PostgreSQL deadlock, serialization or lock-timeout failure -> ``Busy`` (retryable), a value
the database cannot store (PostgreSQL: a NUL character in text, a string longer than its column) ->
``BadRequest``, any other operational/connection failure -> ``Unavailable``.
"""
from __future__ import annotations

import contextlib
import logging
import os
import socket
from pathlib import Path
from typing import Any
from collections.abc import Iterator

from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from agents.memory_hub.stores.leader import Leadership
from agents.sql_engine import SqlSettings, create_sql_engine, is_memory_database
from bus.errors import BadRequest, Busy, Conflict, HubError, Unavailable

log = logging.getLogger(__name__)

DB_FILENAME = "memory_hub.db"
WRITE_LOCK_KEY = 0x6D656D68756201        # PostgreSQL advisory lock id of the writers ("memhub" + 1)
RETRYABLE_SQLSTATES = {"40001", "40P01", "55P03"}   # serialization failure, deadlock, lock not available


def default_database_url(data_dir: str | Path) -> str:
    return f"sqlite:///{Path(data_dir).expanduser().resolve() / DB_FILENAME}"


class SqlStore:
    """Engine + session factories; ``with store.transaction() as s:`` commits or rolls back."""

    def __init__(self, database_url: str | None = None, *, data_dir: str | Path | None = None,
                 settings: SqlSettings | None = None) -> None:
        if database_url is None:
            if data_dir is None:
                raise ValueError("SqlStore needs a database_url or a data_dir")
            database_url = default_database_url(data_dir)
        self.settings = settings or SqlSettings()
        self.url = database_url
        self.replica = replica_name()
        self.engine = self._create_engine(database_url)
        self.is_sqlite = self.engine.dialect.name == "sqlite"
        self._read_factory = sessionmaker(bind=self.engine, expire_on_commit=False)
        write_engine = self.engine.execution_options(sqlite_begin="IMMEDIATE")
        self._write_factory = sessionmaker(bind=write_engine, expire_on_commit=False)
        self.leadership = Leadership(database_url, self.replica)

    # ------------------------------------------------------------------ engine
    def _create_engine(self, database_url: str) -> Engine:
        engine = create_sql_engine(database_url, self.settings, application_name=self.replica)
        if engine.dialect.name == "postgresql":
            _install_postgres_write_lock(engine)
        return engine

    # ------------------------------------------------------------------ scopes
    @contextlib.contextmanager
    def transaction(self) -> Iterator[Session]:
        """A write scope: commits on success, rolls back on any exception (nothing half-written)."""
        with _typed_errors(), _scope(self._write_factory) as session:
            yield session

    @contextlib.contextmanager
    def session(self) -> Iterator[Session]:
        """A read scope (deferred BEGIN); also commits on success, so small writes work, but prefer
        ``transaction()`` for writes: it cannot fail on a read-to-write lock upgrade."""
        with _typed_errors(), _scope(self._read_factory) as session:
            yield session

    # ------------------------------------------------------------------ lifecycle and health
    def migrate(self) -> str | None:
        """Bring the schema to the newest Alembic revision; returns it. Idempotent."""
        from migrations.runner import upgrade_to_head

        if self.is_sqlite and is_memory_database(make_url(self.url).database):
            with self.engine.begin() as conn:
                return upgrade_to_head(self.url, "memory_hub", connection=conn)
        return upgrade_to_head(self.url, "memory_hub")

    def is_leader(self) -> bool:
        """Does this replica run the once-only background work now? (SQLite: always.)"""
        return self.leadership.is_leader()

    def ping(self) -> bool:
        try:
            with self.engine.connect() as conn:
                conn.exec_driver_sql("SELECT 1")
            return True
        except DBAPIError as exc:
            log.warning("sql ping failed: %s", exc)
            return False

    def health(self) -> tuple[bool, dict[str, Any]]:
        """``(ok, detail)`` for the hub's health checks."""
        detail: dict[str, Any] = {"dialect": self.engine.dialect.name}
        ok = self.ping()
        if ok and self.is_sqlite:
            with self.engine.connect() as conn:
                detail["journal_mode"] = conn.exec_driver_sql("PRAGMA journal_mode").scalar()
        elif self.leadership.postgres:
            detail.update(replica=self.replica, leader=self.is_leader())
        detail["connected"] = ok
        return ok, detail

    def close(self) -> None:
        """Checkpoint the WAL into the main file (SQLite), hand leadership over, close every pooled connection."""
        self.leadership.close()
        if self.is_sqlite and not is_memory_database(make_url(self.url).database):
            try:
                with self.engine.connect() as conn:
                    conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
            except DBAPIError as exc:
                log.warning("sql checkpoint at close failed: %s", exc)
        self.engine.dispose()


def replica_name() -> str:
    """This process's name on the database (at most 63 bytes: PostgreSQL's application_name limit)."""
    return f"memory_hub {socket.gethostname()[:40]} {os.getpid()}"


def _install_postgres_write_lock(engine: Engine) -> None:
    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        if conn.get_execution_options().get("sqlite_begin") == "IMMEDIATE":
            conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({WRITE_LOCK_KEY})")


@contextlib.contextmanager
def _scope(factory: sessionmaker) -> Iterator[Session]:
    session = factory()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


@contextlib.contextmanager
def _typed_errors() -> Iterator[None]:
    try:
        yield
    except HubError:
        raise
    except IntegrityError as exc:
        raise Conflict(f"constraint violated: {exc.orig}") from exc
    except DataError as exc:
        raise BadRequest(f"value not storable: {_first_line(exc.orig)}") from exc
    except OperationalError as exc:
        text = str(exc.orig).lower()
        if "locked" in text or "busy" in text or getattr(exc.orig, "sqlstate", None) in RETRYABLE_SQLSTATES:
            raise Busy("database is busy, retry later", retry_after_ms=100) from exc
        log.error("sql operational error: %s", exc)
        raise Unavailable(f"database is not available: {exc.orig}") from exc
    except DBAPIError as exc:
        if exc.connection_invalidated:
            raise Unavailable("database is not available") from exc
        raise


def _first_line(error: BaseException | None) -> str:
    return str(error).strip().split("\n", 1)[0]

