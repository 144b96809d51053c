"""The outbox of model facts bound for MemoryHub (agents/model_manager_suite/model_facts.py).

Revision ID: 0004_model_facts_outbox
Revises: 0003_idempotency_keys
Create Date: 2026-12-05

``model_facts_outbox``: one row per fact (MemoryHub key, JSON value, optional TTL) in insertion order, kept
until MemoryHub acknowledged it; ``dead`` rows were refused for good. Integer ids are never reused.
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004_model_facts_outbox"
down_revision: str | None = "0003_idempotency_keys"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "model_facts_outbox",
        sa.Column("id", sa.Integer(), nullable=False, autoincrement=True),
        sa.Column("key", sa.String(length=512), nullable=False),
        sa.Column("value", sa.JSON(), nullable=False),
        sa.Column("ttl_s", sa.Float(), nullable=True),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_model_facts_outbox"),
        sqlite_autoincrement=True,
    )


def downgrade() -> None:
    op.drop_table("model_facts_outbox")
