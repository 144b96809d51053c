"""PostgreSQL search support: a generated ``tsvector`` column with a GIN index, and the change feed trigger.

Revision ID: 0005_postgres_search
Revises: 0004_idempotency_keys
Create Date: 2026-12-05

PostgreSQL only (SQLite has its FTS5 table from revision 0002 and runs one hub per file; other dialects:
nothing, keyword search falls back to LIKE there).

* ``memories.search_tsv`` is ``to_tsvector('english', content || ' ' || tags)``, a STORED generated
  column: the database keeps it for every write by any code path, and adding it computes it for the rows
  already there. ``ix_memories_search_tsv`` (GIN) answers ``@@`` queries. The column is not part of the
  SQLAlchemy models (the Alembic environment ignores it), so no query selects it by accident. Keep the
  expression in step with ``agents/memory_hub/search/keyword_pg.py``.
* ``memories_change_feed``: after a row is inserted, deleted, or its embedding changes, ``pg_notify`` on
  channel ``memory_hub_changes`` with payload ``{"id": memory_id, "by": the writer's application_name}``; sent at
  commit only (never for a rolled-back write). Replicas follow it (``agents/memory_hub/search/change_feed.py``).
"""
from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0005_postgres_search"
down_revision: str | None = "0004_idempotency_keys"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMN = "search_tsv"
INDEX = "ix_memories_search_tsv"
EXPRESSION = "to_tsvector('english'::regconfig, coalesce(content, '') || ' ' || coalesce(tags::text, ''))"
CHANNEL = "memory_hub_changes"
NOTIFY_FUNCTION = f"""
CREATE OR REPLACE FUNCTION memory_hub_notify_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('{CHANNEL}', json_build_object(
        'id', coalesce(NEW.memory_id, OLD.memory_id),
        'by', coalesce(current_setting('application_name', true), ''))::text);
    RETURN NULL;
END
$$
"""
TRIGGER = ("CREATE TRIGGER memories_change_feed AFTER INSERT OR DELETE OR UPDATE OF embedding ON memories "
           "FOR EACH ROW EXECUTE FUNCTION memory_hub_notify_change()")


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(f"ALTER TABLE memories ADD COLUMN {COLUMN} tsvector GENERATED ALWAYS AS ({EXPRESSION}) STORED")
    op.execute(f"CREATE INDEX {INDEX} ON memories USING gin ({COLUMN})")
    op.execute(NOTIFY_FUNCTION)
    op.execute(TRIGGER)


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("DROP TRIGGER IF EXISTS memories_change_feed ON memories")
    op.execute("DROP FUNCTION IF EXISTS memory_hub_notify_change()")
    op.execute(f"DROP INDEX IF EXISTS {INDEX}")
    op.execute(f"ALTER TABLE memories DROP COLUMN IF EXISTS {COLUMN}")
