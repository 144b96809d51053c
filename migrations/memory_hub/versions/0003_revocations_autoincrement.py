"""Revoked token ids in SQL; integer ids never reused (SQLite AUTOINCREMENT).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25

* ``revoked_tokens``: logout revocations survive a Redis flush and are checked from SQL while Redis is down.
* On SQLite, the tables with integer ids are rebuilt with AUTOINCREMENT so a deleted row's id is never
  handed out again (readers that follow "rows after id N" would otherwise skip or repeat rows).
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

INTEGER_ID_TABLES = ("memory_relationships", "memory_group_mappings", "context_items", "interactions",
                     "error_patterns", "performance_logs", "proactive_context_history")


def upgrade() -> None:
    op.create_table(
        "revoked_tokens",
        sa.Column("jti", sa.String(length=128), nullable=False),
        sa.Column("subject", sa.String(length=128), nullable=True),
        sa.Column("expires_at", sa.Float(), nullable=False),
        sa.Column("revoked_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("jti"),
    )
    op.create_index("ix_revoked_tokens_expires_at", "revoked_tokens", ["expires_at"])
    if op.get_bind().dialect.name == "sqlite":
        for table in INTEGER_ID_TABLES:
            with op.batch_alter_table(table, recreate="always", table_kwargs={"sqlite_autoincrement": True}):
                pass


def downgrade() -> None:
    op.drop_index("ix_revoked_tokens_expires_at", table_name="revoked_tokens")
    op.drop_table("revoked_tokens")
