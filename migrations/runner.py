"""Run the Alembic migrations of a hub programmatically (no alembic.ini, any cwd, installed or not).

``upgrade_to_head(database_url, which)`` brings the database of ``which`` ("memory_hub" or
"model_manager_suite") to the newest revision of ``migrations/<which>/versions``; running it again is a
no-op. Logging is left to the caller (no ``fileConfig``).

Conventions every ``migrations/<which>/env.py`` follows (the runner provides them):

* ``config.attributes["connection"]``: an open SQLAlchemy connection inside a transaction; the env
  configures the migration context on it and must not commit it (the runner does).
* ``config.attributes["version_table"]``: ``alembic_version_<which>``, so both hubs may share one database.
* ``sqlalchemy.url`` main option: the URL, for the ``alembic`` command line.

SQLite: DDL runs inside one real transaction (pysqlite's implicit transaction handling is switched off
on the migration connection), so a failing revision leaves the file as it was; foreign key enforcement
stays off during migrations (batch table rebuilds must not cascade); concurrent starts are serialized by
an advisory lock file beside the database.
"""
from __future__ import annotations

import contextlib
import fcntl
from pathlib import Path
from typing import Any
from collections.abc import Iterator

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, event, pool
from sqlalchemy.engine import Connection, Engine, make_url

TREES = ("memory_hub", "model_manager_suite")
MIGRATIONS_DIR = Path(__file__).resolve().parent


def script_location(which: str) -> Path:
    if which not in TREES:
        raise ValueError(f"unknown migration tree {which!r}; expected one of {', '.join(TREES)}")
    return MIGRATIONS_DIR / which


def version_table(which: str) -> str:
    script_location(which)
    return f"alembic_version_{which}"


def make_config(database_url: str, which: str) -> Config:
    """A programmatic Alembic ``Config`` for one tree (no ini file, no logging setup)."""
    cfg = Config()
    cfg.set_main_option("script_location", str(script_location(which)))
    cfg.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    cfg.attributes["version_table"] = version_table(which)
    return cfg


def head_revision(which: str) -> str | None:
    return ScriptDirectory.from_config(make_config("sqlite://", which)).get_current_head()


def migration_engine(database_url: str) -> Engine:
    """An engine for migrations: no pooling; on SQLite, transactional DDL and foreign keys off."""
    url = make_url(database_url)
    engine = create_engine(url, poolclass=pool.NullPool)
    if url.get_backend_name() == "sqlite":
        _make_sqlite_transactional(engine)
    return engine


def _make_sqlite_transactional(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        dbapi_connection.execute("PRAGMA foreign_keys=OFF")

    @event.listens_for(engine, "begin")
    def _begin(conn: Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def upgrade_to_head(database_url: str, which: str = "memory_hub", *,
                    connection: Connection | None = None) -> str | None:
    """Upgrade ``which``'s database to head; returns the head revision. Idempotent.

    ``connection``: run on this open connection instead of a new engine (needed for ``sqlite://``
    in-memory databases); the caller commits it.
    """
    cfg = make_config(database_url, which)
    if connection is not None:
        cfg.attributes["connection"] = connection
        command.upgrade(cfg, "head")
        return head_revision(which)
    _prepare_sqlite_dir(database_url)
    with _migration_lock(database_url):
        engine = migration_engine(database_url)
        try:
            with engine.begin() as conn:
                cfg.attributes["connection"] = conn
                command.upgrade(cfg, "head")
        finally:
            engine.dispose()
    return head_revision(which)


def current_revision(database_url: str, which: str = "memory_hub") -> str | None:
    """The revision the database is at (None for an empty database)."""
    engine = create_engine(database_url, poolclass=pool.NullPool)
    try:
        with engine.connect() as conn:
            ctx = MigrationContext.configure(conn, opts={"version_table": version_table(which)})
            return ctx.get_current_revision()
    finally:
        engine.dispose()


def _sqlite_file(database_url: str) -> Path | None:
    url = make_url(database_url)
    if url.get_backend_name() != "sqlite":
        return None
    database = url.database or ""
    if database in ("", ":memory:") or database.startswith("file:"):
        return None
    return Path(database)


def _prepare_sqlite_dir(database_url: str) -> None:
    path = _sqlite_file(database_url)
    if path is not None:
        path.expanduser().resolve().parent.mkdir(parents=True, exist_ok=True)


@contextlib.contextmanager
def _migration_lock(database_url: str) -> Iterator[None]:
    """Serialize migrations of one SQLite file across processes (advisory lock file)."""
    path = _sqlite_file(database_url)
    if path is None:
        yield
        return
    lock_path = path.expanduser().resolve().with_name(path.name + ".migrate.lock")
    with open(lock_path, "a+b") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
