"""Predictive loader usage log and preloads, the legacy MEF tables, evaluation jobs.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26

Frozen copy of ``agents/model_manager_suite/eval_models.py`` at this revision (the models-vs-migrations
test checks that they agree). Times are epoch floats, except the two legacy ModelEvaluationFramework
tables whose timestamps are ISO-8601 strings as the legacy agent stored them.
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0002'
down_revision: str | None = '0001'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('eval_jobs',
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('model_id', sa.String(length=200), nullable=False),
    sa.Column('model_version', sa.String(length=16), nullable=True),
    sa.Column('model_sha256', sa.String(length=64), nullable=True),
    sa.Column('model_b_id', sa.String(length=200), nullable=True),
    sa.Column('model_b_version', sa.String(length=16), nullable=True),
    sa.Column('model_b_sha256', sa.String(length=64), nullable=True),
    sa.Column('params', sa.JSON(), nullable=False),
    sa.Column('progress', sa.JSON(), nullable=True),
    sa.Column('results', sa.JSON(), nullable=True),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('created_at', sa.Float(), nullable=False),
    sa.Column('started_at', sa.Float(), nullable=True),
    sa.Column('finished_at', sa.Float(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_eval_jobs'))
    )
    op.create_index(op.f('ix_eval_jobs_model_id'), 'eval_jobs', ['model_id'], unique=False)
    op.create_index(op.f('ix_eval_jobs_status'), 'eval_jobs', ['status'], unique=False)
    op.create_table('model_evaluation_scores',
    sa.Column('evaluation_id', sa.String(length=64), nullable=False),
    sa.Column('model_name', sa.String(length=200), nullable=False),
    sa.Column('cycle_id', sa.String(length=64), nullable=False),
    sa.Column('trust_score', sa.Float(), nullable=False),
    sa.Column('accuracy', sa.Float(), nullable=True),
    sa.Column('f1_score', sa.Float(), nullable=True),
    sa.Column('avg_latency_ms', sa.Float(), nullable=False),
    sa.Column('evaluation_timestamp', sa.String(length=40), nullable=False),
    sa.Column('comparison_data', sa.JSON(), nullable=True),
    sa.PrimaryKeyConstraint('evaluation_id', name=op.f('pk_model_evaluation_scores'))
    )
    op.create_index(op.f('ix_model_evaluation_scores_evaluation_timestamp'), 'model_evaluation_scores', ['evaluation_timestamp'], unique=False)
    op.create_index(op.f('ix_model_evaluation_scores_model_name'), 'model_evaluation_scores', ['model_name'], unique=False)
    op.create_table('model_usage',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('model_id', sa.String(length=200), nullable=False),
    sa.Column('ts', sa.Float(), nullable=False),
    sa.Column('source', sa.String(length=32), nullable=False),
    sa.Column('was_loaded', sa.Boolean(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_model_usage'))
    )
    op.create_index(op.f('ix_model_usage_model_id'), 'model_usage', ['model_id'], unique=False)
    op.create_index(op.f('ix_model_usage_ts'), 'model_usage', ['ts'], unique=False)
    op.create_table('performance_metrics',
    sa.Column('metric_id', sa.String(length=64), nullable=False),
    sa.Column('agent_name', sa.String(length=200), nullable=False),
    sa.Column('metric_name', sa.String(length=200), nullable=False),
    sa.Column('value', sa.Float(), nullable=False),
    sa.Column('timestamp', sa.String(length=40), nullable=False),
    sa.Column('context', sa.JSON(), nullable=True),
    sa.PrimaryKeyConstraint('metric_id', name=op.f('pk_performance_metrics'))
    )
    op.create_index(op.f('ix_performance_metrics_agent_name'), 'performance_metrics', ['agent_name'], unique=False)
    op.create_index(op.f('ix_performance_metrics_timestamp'), 'performance_metrics', ['timestamp'], unique=False)
    op.create_table('preloads',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('model_id', sa.String(length=200), nullable=False),
    sa.Column('version', sa.String(length=16), nullable=True),
    sa.Column('ts', sa.Float(), nullable=False),
    sa.Column('score', sa.Float(), nullable=True),
    sa.Column('reason', sa.String(length=32), nullable=False),
    sa.Column('outcome', sa.String(length=16), nullable=False),
    sa.Column('resolved_at', sa.Float(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_preloads'))
    )
    op.create_index(op.f('ix_preloads_model_id'), 'preloads', ['model_id'], unique=False)
    op.create_index(op.f('ix_preloads_outcome'), 'preloads', ['outcome'], unique=False)
    op.create_table('usage_models',
    sa.Column('seq', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('model_id', sa.String(length=200), nullable=False),
    sa.Column('first_used', sa.Float(), nullable=False),
    sa.PrimaryKeyConstraint('seq', name=op.f('pk_usage_models')),
    sa.UniqueConstraint('model_id', name=op.f('uq_usage_models_model_id'))
    )



def downgrade() -> None:
    op.drop_table('usage_models')
    op.drop_index(op.f('ix_preloads_outcome'), table_name='preloads')
    op.drop_index(op.f('ix_preloads_model_id'), table_name='preloads')
    op.drop_table('preloads')
    op.drop_index(op.f('ix_performance_metrics_timestamp'), table_name='performance_metrics')
    op.drop_index(op.f('ix_performance_metrics_agent_name'), table_name='performance_metrics')
    op.drop_table('performance_metrics')
    op.drop_index(op.f('ix_model_usage_ts'), table_name='model_usage')
    op.drop_index(op.f('ix_model_usage_model_id'), table_name='model_usage')
    op.drop_table('model_usage')
    op.drop_index(op.f('ix_model_evaluation_scores_model_name'), table_name='model_evaluation_scores')
    op.drop_index(op.f('ix_model_evaluation_scores_evaluation_timestamp'), table_name='model_evaluation_scores')
    op.drop_table('model_evaluation_scores')
    op.drop_index(op.f('ix_eval_jobs_status'), table_name='eval_jobs')
    op.drop_index(op.f('ix_eval_jobs_model_id'), table_name='eval_jobs')
    op.drop_table('eval_jobs')
