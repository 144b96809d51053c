"""Alembic migrations of MemoryHub on SQLite and PostgreSQL: fresh schema, agreement with the models,
idempotence, downgrade, any cwd."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, inspect, text

from agents.memory_hub.stores.sql_models import TABLES, Base
from migrations import runner

REPO = Path(__file__).resolve().parents[3]
EXPECTED_TABLES = {
    "memories", "memory_relationships", "context_groups", "memory_group_mappings", "sessions", "knowledge_base",
    "kv_entries", "contexts", "context_items", "experiences", "interactions", "session_summaries",
    "digital_twins", "error_patterns", "users", "trust_scores", "performance_logs", "proactive_context_history",
    "revoked_tokens", "memory_hub_idempotency",
}


def _url(path: Path) -> str:
    return f"sqlite:///{path}"


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_url(request: pytest.FixtureRequest, tmp_path: Path):
    """A database without any schema: a new SQLite file, or a new PostgreSQL database."""
    if request.param == "sqlite":
        yield _url(tmp_path / "hub.db")
        return
    databases = request.getfixturevalue("postgres")
    name, url = databases.empty()
    try:
        yield url
    finally:
        databases.drop(name)


def _strict_include_name(name: str | None, type_: str, _parents: dict) -> bool:
    """Only FTS tables (created by raw SQL in a later revision) and the version table are not models."""
    if type_ == "table" and name:
        return not name.startswith(("memories_fts", "alembic_version", "sqlite_"))
    return name not in ("search_tsv", "ix_memories_search_tsv")    # PostgreSQL's generated tsvector (0004)


def _user_tables(url: str) -> set[str]:
    engine = create_engine(url)
    try:
        return {t for t in inspect(engine).get_table_names() if not t.startswith("memories_fts")}
    finally:
        engine.dispose()


def test_models_declare_every_expected_table() -> None:
    assert set(TABLES) == EXPECTED_TABLES


def test_upgrade_creates_schema_on_fresh_file(tmp_path: Path) -> None:
    url = _url(tmp_path / "deep" / "dir" / "hub.db")       # parent dirs are created
    head = runner.upgrade_to_head(url, "memory_hub")
    assert head == runner.head_revision("memory_hub")
    assert runner.current_revision(url, "memory_hub") == head
    assert _user_tables(url) == EXPECTED_TABLES | {runner.version_table("memory_hub")}


def test_models_and_migrations_agree(empty_url: str) -> None:
    url = empty_url
    runner.upgrade_to_head(url, "memory_hub")
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            ctx = MigrationContext.configure(conn, opts={
                "compare_type": True, "compare_server_default": True, "include_name": _strict_include_name,
                "version_table": runner.version_table("memory_hub")})
            diffs = compare_metadata(ctx, Base.metadata)
    finally:
        engine.dispose()
    assert diffs == []


LATER_TABLES = ("revoked_tokens", "memory_hub_idempotency")   # created by revisions after 0001


def _table_of(obj) -> str | None:
    table = getattr(obj, "table", None)
    return table.name if table is not None else getattr(obj, "name", None)


def test_revision_0001_alone_matches_models(empty_url: str) -> None:
    url = empty_url
    cfg = runner.make_config(url, "memory_hub")
    engine = runner.migration_engine(url)
    try:
        with engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "0001")
        with engine.connect() as conn:
            ctx = MigrationContext.configure(conn, opts={
                "compare_type": True, "include_name": _strict_include_name,
                "include_object": lambda obj, name, type_, reflected, other: _table_of(obj) not in LATER_TABLES})
            assert compare_metadata(ctx, Base.metadata) == []
    finally:
        engine.dispose()


def test_upgrade_twice_is_a_noop(empty_url: str) -> None:
    url = empty_url
    first = runner.upgrade_to_head(url, "memory_hub")
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql("INSERT INTO users (user_id, password_hash, created_at, scopes) "
                                 "VALUES ('ana', 'x', 1.0, '[]')")
        schema_before = _schema_sql(engine)
        second = runner.upgrade_to_head(url, "memory_hub")
        assert second == first
        assert _schema_sql(engine) == schema_before
        with engine.connect() as conn:
            assert conn.exec_driver_sql("SELECT user_id FROM users").scalars().all() == ["ana"]
    finally:
        engine.dispose()


def test_downgrade_to_base_removes_every_table(empty_url: str) -> None:
    url = empty_url
    runner.upgrade_to_head(url, "memory_hub")
    cfg = runner.make_config(url, "memory_hub")
    engine = runner.migration_engine(url)
    try:
        with engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.downgrade(cfg, "base")
    finally:
        engine.dispose()
    assert _user_tables(url) <= {runner.version_table("memory_hub")}
    runner.upgrade_to_head(url, "memory_hub")
    assert _user_tables(url) >= EXPECTED_TABLES


def test_server_defaults_fill_raw_inserts(empty_url: str) -> None:
    """Importers writing raw SQL get the legacy defaults from the database itself."""
    url = empty_url
    runner.upgrade_to_head(url, "memory_hub")
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql("INSERT INTO memories (memory_id, content, created_at, updated_at, metadata, tags, "
                                 "relationships) VALUES ('m1', 'hello', 1.0, 1.0, '{}', '[]', '{}')")
            row = conn.exec_driver_sql("SELECT memory_type, memory_tier, importance, access_count, namespace "
                                       "FROM memories").one()
    finally:
        engine.dispose()
    assert tuple(row) == ("general", "short", 0.5, 0, "default")


def _check_env_sees_no_changes(url: str, which: str) -> None:
    """Autogenerate through the tree's own env.py (its filters) finds nothing to do."""
    cfg = runner.make_config(url, which)
    engine = runner.migration_engine(url)
    try:
        with engine.connect() as conn:
            cfg.attributes["connection"] = conn
            command.check(cfg)
    finally:
        engine.dispose()


def test_env_ignores_fts_tables(empty_url: str) -> None:
    url = empty_url
    runner.upgrade_to_head(url, "memory_hub")
    _check_env_sees_no_changes(url, "memory_hub")


@pytest.mark.skipif(not (runner.MIGRATIONS_DIR / "model_manager_suite" / "env.py").exists(),
                    reason="ModelManagerSuite migrations not present")
def test_both_hubs_can_share_one_database(empty_url: str) -> None:
    url = empty_url
    heads = {which: runner.upgrade_to_head(url, which) for which in runner.TREES}
    assert {which: runner.current_revision(url, which) for which in runner.TREES} == heads
    assert {which: runner.upgrade_to_head(url, which) for which in runner.TREES} == heads
    _check_env_sees_no_changes(url, "memory_hub")


def test_unknown_tree_is_rejected() -> None:
    with pytest.raises(ValueError):
        runner.upgrade_to_head("sqlite://", "nope")


def test_runner_works_from_another_cwd_without_ini(tmp_path: Path) -> None:
    db = tmp_path / "elsewhere.db"
    code = ("import logging, sys; from migrations.runner import upgrade_to_head; "
            f"print(upgrade_to_head({_url(db)!r}, 'memory_hub')); "
            "print('handlers', len(logging.getLogger().handlers))")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                         check=True).stdout.split()
    assert out[0] == runner.head_revision("memory_hub")
    assert out[1:] == ["handlers", "0"]          # logging was not configured behind the caller's back
    assert _user_tables(_url(db)) >= EXPECTED_TABLES


def _schema_sql(engine) -> list[tuple]:
    with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            return conn.exec_driver_sql("SELECT type, name, sql FROM sqlite_master ORDER BY type, name").all()
        columns = conn.execute(text("SELECT table_name, column_name, data_type, column_default, is_nullable, "
                                    "generation_expression FROM information_schema.columns "
                                    "WHERE table_schema = 'public' ORDER BY 1, 2")).all()
        indexes = conn.execute(text("SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'public' "
                                    "ORDER BY 1")).all()
        return [*columns, *indexes]


def test_integer_ids_are_never_reused(empty_url: str) -> None:
    url = empty_url
    runner.upgrade_to_head(url, "memory_hub")
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO contexts(context_id, window_size, metadata, created_at, updated_at) "
                              "VALUES ('c', 10, '{}', 0, 0)"))
            for n in range(3):
                conn.execute(text("INSERT INTO context_items(context_id, text, metadata, importance, timestamp) "
                                  f"VALUES ('c', 't{n}', '{{}}', 0.5, {n})"))
            conn.execute(text("DELETE FROM context_items WHERE id = 3"))
            conn.execute(text("INSERT INTO context_items(context_id, text, metadata, importance, timestamp) "
                              "VALUES ('c', 'new', '{}', 0.5, 9)"))
            newest = conn.execute(text("SELECT max(id) FROM context_items")).scalar_one()
    finally:
        engine.dispose()
    assert newest == 4
