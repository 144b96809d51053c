"""Initial ModelManagerSuite schema: the model registry, the sha256 cache and per-model stats.

Revision ID: 0001
Revises:
Create Date: 2026-11-25

Frozen copy of ``agents/model_manager_suite/sql_models.py`` at this revision (a test checks that models
and migrations agree). Times are epoch floats; JSON columns hold dicts. Revision 0002 (predictive-loader
usage, evaluation jobs) revises this one.
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0001'
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('model_files',
    sa.Column('path', sa.Text(), nullable=False),
    sa.Column('size', sa.BigInteger(), nullable=False),
    sa.Column('mtime_ns', sa.BigInteger(), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('hashed_at', sa.Float(), nullable=False),
    sa.PrimaryKeyConstraint('path', name=op.f('pk_model_files'))
    )
    op.create_table('model_stats',
    sa.Column('model_id', sa.String(length=200), nullable=False),
    sa.Column('loads', sa.Integer(), nullable=False),
    sa.Column('load_failures', sa.Integer(), nullable=False),
    sa.Column('total_load_s', sa.Float(), nullable=False),
    sa.Column('last_load_s', sa.Float(), nullable=True),
    sa.Column('requests', sa.Integer(), nullable=False),
    sa.Column('errors', sa.Integer(), nullable=False),
    sa.Column('prompt_tokens', sa.BigInteger(), nullable=False),
    sa.Column('tokens_generated', sa.BigInteger(), nullable=False),
    sa.Column('generation_s', sa.Float(), nullable=False),
    sa.Column('last_used', sa.Float(), nullable=True),
    sa.Column('updated_at', sa.Float(), nullable=False),
    sa.PrimaryKeyConstraint('model_id', name=op.f('pk_model_stats'))
    )
    op.create_table('models',
    sa.Column('id', sa.String(length=200), nullable=False),
    sa.Column('version', sa.String(length=16), nullable=True),
    sa.Column('path', sa.Text(), nullable=False),
    sa.Column('source', sa.String(length=16), nullable=False),
    sa.Column('present', sa.Boolean(), nullable=False),
    sa.Column('size', sa.BigInteger(), nullable=True),
    sa.Column('mtime', sa.Float(), nullable=True),
    sa.Column('sha256', sa.String(length=64), nullable=True),
    sa.Column('valid', sa.Boolean(), nullable=False),
    sa.Column('invalid_reason', sa.Text(), nullable=True),
    sa.Column('display_name', sa.String(length=200), nullable=True),
    sa.Column('architecture', sa.String(length=64), nullable=True),
    sa.Column('model_name', sa.String(length=200), nullable=True),
    sa.Column('quantization', sa.String(length=32), nullable=True),
    sa.Column('context_length', sa.Integer(), nullable=True),
    sa.Column('parameter_count', sa.BigInteger(), nullable=True),
    sa.Column('header', sa.JSON(), nullable=True),
    sa.Column('config', sa.JSON(), nullable=True),
    sa.Column('pinned', sa.Boolean(), nullable=False),
    sa.Column('priority', sa.Integer(), nullable=False),
    sa.Column('estimated_memory_mb', sa.Float(), nullable=True),
    sa.Column('measured_memory_mb', sa.Float(), nullable=True),
    sa.Column('measured_version', sa.String(length=16), nullable=True),
    sa.Column('measured_n_ctx', sa.Integer(), nullable=True),
    sa.Column('measured_device', sa.String(length=32), nullable=True),
    sa.Column('measured_at', sa.Float(), nullable=True),
    sa.Column('first_seen', sa.Float(), nullable=False),
    sa.Column('updated_at', sa.Float(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_models'))
    )


def downgrade() -> None:
    op.drop_table('models')
    op.drop_table('model_stats')
    op.drop_table('model_files')
