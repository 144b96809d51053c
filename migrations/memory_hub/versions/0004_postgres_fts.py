"""Full-text index of memories on PostgreSQL: a generated ``tsvector`` column with a GIN index.

Revision ID: 0004_postgres_fts
Revises: 0003
Create Date: 2026-12-05

PostgreSQL only (SQLite has its FTS5 table from revision 0002; other dialects: nothing, keyword search
falls back to LIKE there). ``memories.search_tsv`` is ``to_tsvector('english', content || ' ' || tags)``,
a STORED generated column: the database keeps it for every write by any code path, and adding it
computes it for the rows already there. ``ix_memories_search_tsv`` (GIN) answers ``@@`` queries. The
column is not part of the SQLAlchemy models (the Alembic environment ignores it), so no query selects
it by accident. Keep the expression in step with ``agents/memory_hub/search/keyword_pg.py``.
"""
from __future__ import annotations

from typing import Sequence

from alembic import op

revision: str = "0004_postgres_fts"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMN = "search_tsv"
INDEX = "ix_memories_search_tsv"
EXPRESSION = "to_tsvector('english'::regconfig, coalesce(content, '') || ' ' || coalesce(tags::text, ''))"


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(f"ALTER TABLE memories ADD COLUMN {COLUMN} tsvector GENERATED ALWAYS AS ({EXPRESSION}) STORED")
    op.execute(f"CREATE INDEX {INDEX} ON memories USING gin ({COLUMN})")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(f"DROP INDEX IF EXISTS {INDEX}")
    op.execute(f"ALTER TABLE memories DROP COLUMN IF EXISTS {COLUMN}")
