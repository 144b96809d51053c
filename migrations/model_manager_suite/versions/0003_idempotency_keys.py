"""Native idempotency keys of ModelManagerSuite (bus/idempotency.py).

Revision ID: 0003_idempotency_keys
Revises: 0002
Create Date: 2026-12-05

``model_suite_idempotency``: one row per (token subject, idempotency_key): the request's fingerprint, ``running`` or
``done``, the msgpack result of the first successful run and when it started. Each hub has its own table,
so both hubs may share one database.
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003_idempotency_keys"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "model_suite_idempotency",
        sa.Column("subject", sa.String(length=200), nullable=False),
        sa.Column("idem_key", sa.String(length=200), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("result", sa.LargeBinary(), nullable=True),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("finished_at", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("subject", "idem_key", name="pk_model_suite_idempotency"),
    )


def downgrade() -> None:
    op.drop_table("model_suite_idempotency")
