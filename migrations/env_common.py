"""The Alembic environment both migration trees share (programmatic: no alembic.ini, no logging setup).

Run through ``migrations.runner``, which passes an open connection in ``config.attributes["connection"]``
and the version table name in ``config.attributes["version_table"]``. Run by the ``alembic`` command
instead, the URL comes from the ``sqlalchemy.url`` main option and the engine comes from
``runner.migration_engine`` (SQLite: transactional DDL, foreign keys off while tables are rebuilt).
SQLite uses batch mode (``render_as_batch``) for ALTERs. Tables whose names start with one of
``ignored_prefixes`` (SQLite internals, version tables, FTS shadow tables) and tables of another tree
sharing the database are invisible to autogenerate, and so are columns named in ``ignored_columns`` (columns
the database computes, such as PostgreSQL's generated ``tsvector``, that the models leave out on purpose).
"""
from __future__ import annotations

from typing import Any

from alembic import context
from sqlalchemy import MetaData
from sqlalchemy.engine import Connection


def run(target_metadata: MetaData, version_table: str, ignored_prefixes: tuple[str, ...],
        compare_server_default: bool = False, ignored_columns: tuple[str, ...] = ()) -> None:
    config = context.config
    prefixes = ("sqlite_", "alembic_version", *ignored_prefixes)

    def include_name(name: str | None, type_: str, parent_names: dict[str, Any]) -> bool:
        return not (type_ == "table" and name and name.startswith(prefixes))

    def include_object(obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any) -> bool:
        if type_ == "column":
            return name not in ignored_columns
        if type_ == "index":
            return not any(column.name in ignored_columns for column in getattr(obj, "columns", ()))
        if type_ != "table":
            return True
        if name and name.startswith(prefixes):
            return False
        return not (reflected and compare_to is None)

    def configure(connection: Connection) -> None:
        context.configure(
            connection=connection, target_metadata=target_metadata,
            version_table=config.attributes.get("version_table", version_table),
            render_as_batch=connection.dialect.name == "sqlite", include_name=include_name,
            include_object=include_object, compare_type=True, compare_server_default=compare_server_default,
            transactional_ddl=True,
        )

    if context.is_offline_mode():
        context.configure(url=config.get_main_option("sqlalchemy.url"), target_metadata=target_metadata,
                          version_table=config.attributes.get("version_table", version_table), literal_binds=True,
                          render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()
        return
    connection = config.attributes.get("connection")
    if connection is not None:
        configure(connection)
        with context.begin_transaction():
            context.run_migrations()
        return
    from migrations.runner import migration_engine

    engine = migration_engine(config.get_main_option("sqlalchemy.url"))
    try:
        with engine.begin() as conn:
            configure(conn)
            with context.begin_transaction():
                context.run_migrations()
    finally:
        engine.dispose()
