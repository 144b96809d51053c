"""The one SQL engine factory of both hubs (and of the legacy-data importers).

``create_sql_engine(url, settings)`` returns a SQLAlchemy engine:

* SQLite: the file's directory is created; every new connection gets ``journal_mode=WAL``, ``synchronous``
  from the settings (``FULL``: a committed transaction is fsynced to the WAL before ``commit`` returns, so it
  survives ``kill -9`` and power loss; ``NORMAL`` only survives a process kill), ``busy_timeout`` and
  ``foreign_keys``. pysqlite's own transaction handling is replaced by explicit ``BEGIN`` statements: the
  mode is the connection's ``sqlite_begin`` execution option (``IMMEDIATE`` takes the write lock up front, so
  concurrent writers queue on ``busy_timeout`` instead of failing on a lock upgrade), else ``begin``.
  ``sqlite:///:memory:`` shares one connection (``StaticPool``).
* anything else (PostgreSQL): a pool of ``pool_size`` + ``max_overflow`` connections, pinged before use,
  named ``application_name`` when given.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from sqlalchemy import create_engine, event, pool
from sqlalchemy.engine import Connection, Engine, make_url

from bus.settings import setting


@dataclass(frozen=True)
class SqlSettings:
    """The ``sql`` section of a hub's settings."""

    busy_timeout_ms: int = setting(10000, minimum=0, maximum=600000,
                                   doc="how long a writer waits for the SQLite write lock")
    synchronous: Literal["OFF", "NORMAL", "FULL", "EXTRA"] = setting(
        "FULL", doc="FULL: committed = fsynced (survives power loss); NORMAL: survives kill -9 only")
    pool_size: int = setting(8, minimum=1, maximum=1000)
    max_overflow: int = setting(8, minimum=0, maximum=1000)
    echo: bool = False


def create_sql_engine(database_url: str, settings: SqlSettings = SqlSettings(), *, application_name: str = "",
                      foreign_keys: bool = True, begin: str = "DEFERRED", pooled: bool = True) -> Engine:
    """An engine for ``database_url`` (see the module docstring); ``pooled=False``: a fresh connection per use."""
    url = make_url(database_url)
    if url.get_backend_name() != "sqlite":
        postgres = url.get_backend_name() == "postgresql"
        connect_args: dict[str, Any] = {"application_name": application_name} if application_name and postgres else {}
        if not pooled:
            return create_engine(url, echo=settings.echo, poolclass=pool.NullPool, connect_args=connect_args)
        return create_engine(url, echo=settings.echo, pool_pre_ping=True, pool_size=settings.pool_size,
                             max_overflow=settings.max_overflow, connect_args=connect_args)
    if is_memory_database(url.database):
        engine = create_engine(url, echo=settings.echo, poolclass=pool.StaticPool,
                               connect_args={"check_same_thread": False})
    else:
        Path(str(url.database)).expanduser().resolve().parent.mkdir(parents=True, exist_ok=True)
        sqlite_args: dict[str, Any] = {"check_same_thread": False, "timeout": settings.busy_timeout_ms / 1000.0}
        if pooled:
            engine = create_engine(url, echo=settings.echo, pool_size=settings.pool_size,
                                   max_overflow=settings.max_overflow, connect_args=sqlite_args)
        else:
            engine = create_engine(url, echo=settings.echo, poolclass=pool.NullPool, connect_args=sqlite_args)
    _install_sqlite_pragmas(engine, settings, foreign_keys, begin)
    return engine


def is_memory_database(database: str | None) -> bool:
    return database in (None, "", ":memory:") or "mode=memory" in (database or "")


def _install_sqlite_pragmas(engine: Engine, settings: SqlSettings, foreign_keys: bool, begin: str) -> None:
    statements = ("PRAGMA journal_mode=WAL", f"PRAGMA synchronous={settings.synchronous}",
                  f"PRAGMA busy_timeout={settings.busy_timeout_ms}",
                  f"PRAGMA foreign_keys={'ON' if foreign_keys else 'OFF'}")

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None      # we emit BEGIN ourselves (see _on_begin)
        cursor = dbapi_connection.cursor()
        try:
            for statement in statements:
                cursor.execute(statement)
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        mode = conn.get_execution_options().get("sqlite_begin", begin)
        conn.exec_driver_sql(f"BEGIN {mode}")
