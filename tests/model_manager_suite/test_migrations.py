"""The Alembic revisions create exactly the tables of sql_models, idempotently, beside other trees."""
from __future__ import annotations

from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, inspect

from agents.model_manager_suite.sql_models import full_metadata
from migrations.runner import current_revision, head_revision, upgrade_to_head


def test_upgrade_matches_models_and_is_idempotent(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'm.db'}"
    assert upgrade_to_head(url, "model_manager_suite") == head_revision("model_manager_suite")
    assert upgrade_to_head(url, "model_manager_suite") == head_revision("model_manager_suite")
    assert current_revision(url, "model_manager_suite") == head_revision("model_manager_suite")
    engine = create_engine(url)
    try:
        tables = set(inspect(engine).get_table_names())
        assert {"models", "model_files", "model_stats", "alembic_version_model_manager_suite"} <= tables
        with engine.connect() as conn:
            ctx = MigrationContext.configure(conn, opts={"compare_type": True})
            diffs = [d for d in compare_metadata(ctx, full_metadata())
                     if not (d[0] == "remove_table" and d[1].name.startswith("alembic_version"))]
        assert diffs == []
    finally:
        engine.dispose()


def test_first_revision_is_0001() -> None:
    from alembic.script import ScriptDirectory

    from migrations.runner import make_config

    script = ScriptDirectory.from_config(make_config("sqlite://", "model_manager_suite"))
    assert script.get_revision("0001").down_revision is None
