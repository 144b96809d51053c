"""Full-text index of memories (SQLite FTS5), kept in sync by triggers.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25

SQLite only (other dialects: nothing; keyword search falls back to LIKE there). ``memories_fts`` is an
FTS5 *external-content* table over ``memories.content`` and ``memories.tags`` (the JSON text of the
tag list), keyed by the implicit ``memories.rowid``. Ordinary SQLite triggers keep it in sync, so
rows written by any code path are indexed. Existing rows are indexed by a ``rebuild``.

Anything that recreates the ``memories`` table later (an Alembic batch ALTER, a VACUUM of a table
without an INTEGER PRIMARY KEY can renumber rowids) must recreate these triggers and run
``INSERT INTO memories_fts(memories_fts) VALUES('rebuild')``; the search engine checks the index at
start and rebuilds it when it no longer matches.
"""
from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CREATE_TABLE = (
    "CREATE VIRTUAL TABLE memories_fts USING fts5("
    "content, tags, content='memories', content_rowid='rowid', "
    "tokenize='porter unicode61 remove_diacritics 2')"
)
TRIGGERS = {
    "memories_fts_ai": (
        "CREATE TRIGGER memories_fts_ai AFTER INSERT ON memories BEGIN "
        "INSERT INTO memories_fts(rowid, content, tags) VALUES (new.rowid, new.content, new.tags); END"
    ),
    "memories_fts_ad": (
        "CREATE TRIGGER memories_fts_ad AFTER DELETE ON memories BEGIN "
        "INSERT INTO memories_fts(memories_fts, rowid, content, tags) "
        "VALUES ('delete', old.rowid, old.content, old.tags); END"
    ),
    "memories_fts_au": (
        "CREATE TRIGGER memories_fts_au AFTER UPDATE OF content, tags ON memories BEGIN "
        "INSERT INTO memories_fts(memories_fts, rowid, content, tags) "
        "VALUES ('delete', old.rowid, old.content, old.tags); "
        "INSERT INTO memories_fts(rowid, content, tags) VALUES (new.rowid, new.content, new.tags); END"
    ),
}


def _fts5_available() -> bool:
    bind = op.get_bind()
    if bind.dialect.name != "sqlite":
        return False
    return bool(bind.exec_driver_sql("SELECT sqlite_compileoption_used('ENABLE_FTS5')").scalar())


def upgrade() -> None:
    if not _fts5_available():
        return
    op.execute(CREATE_TABLE)
    for ddl in TRIGGERS.values():
        op.execute(ddl)
    op.execute("INSERT INTO memories_fts(memories_fts) VALUES ('rebuild')")


def downgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    for name in TRIGGERS:
        op.execute(f"DROP TRIGGER IF EXISTS {name}")
    op.execute("DROP TABLE IF EXISTS memories_fts")
