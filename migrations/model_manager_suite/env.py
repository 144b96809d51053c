"""Alembic environment of ModelManagerSuite (programmatic: no alembic.ini, no logging configuration).

Run through ``migrations.runner``, which passes an open connection in ``config.attributes["connection"]``
and the version table name in ``config.attributes["version_table"]``. Run by the ``alembic`` command
instead, the URL comes from the ``sqlalchemy.url`` main option. SQLite uses batch mode
(``render_as_batch``) for ALTERs. Tables of another tree sharing the database are ignored by autogenerate.
"""
from __future__ import annotations

from typing import Any

from alembic import context
from sqlalchemy import create_engine, event, pool
from sqlalchemy.engine import Connection

from agents.model_manager_suite.sql_models import full_metadata

VERSION_TABLE = "alembic_version_model_manager_suite"
IGNORED_TABLE_PREFIXES = ("sqlite_", "alembic_version")

config = context.config
target_metadata = full_metadata()


def include_name(name: str | None, type_: str, parent_names: dict[str, Any]) -> bool:
    """Reflect only this tree's tables (not SQLite internals nor any version table)."""
    if type_ == "table" and name:
        return not name.startswith(IGNORED_TABLE_PREFIXES)
    return True


def include_object(obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any) -> bool:
    """Autogenerate filter: ignore tables of another tree sharing this database."""
    if type_ == "table":
        if name and name.startswith(IGNORED_TABLE_PREFIXES):
            return False
        if reflected and compare_to is None:
            return False
    return True


def _configure(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        version_table=config.attributes.get("version_table", VERSION_TABLE),
        render_as_batch=connection.dialect.name == "sqlite",
        include_name=include_name,
        include_object=include_object,
        compare_type=True,
        transactional_ddl=True,
    )


def _transactional_sqlite(engine: Any) -> None:
    """Let pysqlite run DDL inside BEGIN/COMMIT, so a failed revision leaves nothing behind."""
    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None

    @event.listens_for(engine, "begin")
    def _begin(conn: Connection) -> None:
        conn.exec_driver_sql("BEGIN")


def run_migrations_offline() -> None:
    context.configure(
        url=config.get_main_option("sqlalchemy.url"),
        target_metadata=target_metadata,
        version_table=config.attributes.get("version_table", VERSION_TABLE),
        literal_binds=True,
        render_as_batch=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _configure(connection)
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = create_engine(config.get_main_option("sqlalchemy.url"), poolclass=pool.NullPool)
    if engine.dialect.name == "sqlite":
        _transactional_sqlite(engine)
    try:
        with engine.begin() as conn:
            _configure(conn)
            with context.begin_transaction():
                context.run_migrations()
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
