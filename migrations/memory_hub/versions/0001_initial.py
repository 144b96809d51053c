"""Initial MemoryHub schema: every table of the legacy memory agents plus the hub's own.

Revision ID: 0001
Revises:
Create Date: 2026-11-25

Frozen copy of ``agents/memory_hub/stores/sql_models.py`` at this revision (a test checks that models
and migrations agree). Times are epoch floats; JSON columns hold dicts/lists.
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# children first, so downgrade never trips over a foreign key
TABLES_DROP_ORDER = (
    "memory_relationships", "memory_group_mappings", "context_items", "users", "trust_scores", "sessions",
    "session_summaries", "proactive_context_history", "performance_logs", "memories", "kv_entries",
    "knowledge_base", "interactions", "experiences", "error_patterns", "digital_twins", "contexts",
    "context_groups",
)


def upgrade() -> None:
    op.create_table('context_groups',
        sa.Column('id', sa.String(length=128), nullable=False),
        sa.Column('name', sa.String(length=255), nullable=False),
        sa.Column('description', sa.Text(), nullable=True),
        sa.Column('created_at', sa.Float(), nullable=False),
        sa.Column('updated_at', sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_context_groups'))
    )
    op.create_index(op.f('ix_context_groups_name'), 'context_groups', ['name'], unique=False)

    op.create_table('contexts',
        sa.Column('context_id', sa.String(length=128), nullable=False),
        sa.Column('window_size', sa.Integer(), server_default=sa.text('10'), nullable=False),
        sa.Column('metadata', sa.JSON(), nullable=False),
        sa.Column('created_at', sa.Float(), nullable=False),
        sa.Column('updated_at', sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint('context_id', name=op.f('pk_contexts'))
    )

    op.create_table('digital_twins',
        sa.Column('user_id', sa.String(length=128), nullable=False),
        sa.Column('twin_data', sa.JSON(), nullable=False),
        sa.Column('created_at', sa.Float(), nullable=False),
        sa.Column('updated_at', sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint('user_id', name=op.f('pk_digital_twins'))
    )

    op.create_table('error_patterns',
        sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
        sa.Column('error_type', sa.String(length=128), nullable=False),
        sa.Column('pattern', sa.Text(), nullable=False),
        sa.Column('solution', sa.Text(), nullable=True),
        sa.Column('occurrences', sa.Integer(), server_default=sa.text('0'), nullable=False),
        sa.Column('last_seen', sa.Float(), nullable=True),
        sa.Column('created_at', sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_error_patterns'))
    )
    op.create_index(op.f('ix_error_patterns_error_type'), 'error_patterns', ['error_type'], unique=False)

    op.create_table('experiences',
        sa.Column('exp_id', sa.String(length=128), nullable=False),
        sa.Column('content', sa.JSON(), nullable=False),
        sa.Column('memory_type', sa.String(length=64), server_default='experience', nullable=False),
        sa.Column('importance_score', sa.Float(), server_default=sa.text('0.5'), nullable=False),
        sa.Column('metadata', sa.JSON(), nullable=False),
        sa.Column('created_at', sa.Float(), nullable=False),
        sa.Column('expires_at', sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint('exp_id', name=op.f('pk_experiences'))
    )
    op.create_index(op.f('ix_experiences_created_at'), 'experiences', ['created_at'], unique=False)
    op.create_index(op.f('ix_experiences_expires_at'), 'experiences', ['expires_at'], unique=False)
    op.create_index(op.f('ix_experiences_memory_type'), 'experiences', ['memory_type'], unique=False)

    op.create_table('interactions',
        sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
        sa.Column('session_id', sa.String(length=128), nullable=False),
        sa.Column('interaction_type', sa.String(length=64), nullable=False),
        sa.Column('content', sa.Text(), nullable=False),
        sa.Column('metadata', sa.JSON(), nullable=False),
        sa.Column('timestamp', sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_interactions'))
    )
    op.create_index(op.f('ix_interactions_interaction_type'), 'interactions', ['interaction_type'], unique=False)
    op.create_index(op.f('ix_interactions_session_id'), 'interactions', ['session_id'], unique=False)
    op.create_index('ix_interactions_session_time', 'interactions', ['session_id', 'timestamp'], unique=False)

    op.create_table('knowledge_base',
        sa.Column('doc_id', sa.String(length=128), nullable=False),
        sa.Column('title', sa.String(length=512), nullable=False),
        sa.Column('content', sa.Text(), nullable=False),
        sa.Column('metadata', sa.JSON(), nullable=False),
        sa.Column('namespace', sa.String(length=128), server_default='default', nullable=False),
        sa.Column('created_at', sa.Float(), nullable=False),
        sa.Column('updated_at', sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint('doc_id', name=op.f('pk_knowledge_base'))
    )
    op.create_index(op.f('ix_knowledge_base_namespace'), 'knowledge_base', ['namespace'], unique=False)
    op.create_index(op.f('ix_knowledge_base_updated_at'), 'knowledge_base', ['updated_at'], unique=False)

    op.create_table('kv_entries',
        sa.Column('key', sa.String(length=512), nullable=False),
        sa.Column('value', sa.LargeBinary(), nullable=False),
        sa.Column('expires_at', sa.Float(), nullable=True),
        sa.Column('created_at', sa.Float(), nullable=False),
        sa.Column('updated_at', sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint('key', name=op.f('pk_kv_entries'))
    )
    op.create_index(op.f('ix_kv_entries_expires_at'), 'kv_entries', ['expires_at'], unique=False)

    op.create_table('memories',
        sa.Column('memory_id', sa.String(length=128), nullable=False),
        sa.Column('content', sa.Text(), nullable=False),
        sa.Column('memory_type', sa.String(length=64), server_default='general', nullable=False),
        sa.Column('memory_tier', sa.String(length=16), server_default='short', nullable=False),
        sa.Column('importance', sa.Float(), server_default=sa.text('0.5'), nullable=False),
        sa.Column('access_count', sa.Integer(), server_default=sa.text('0'), nullable=False),
        sa.Column('last_accessed_at', sa.Float(), nullable=True),
        sa.Column('created_at', sa.Float(), nullable=False),
        sa.Column('updated_at', sa.Float(), nullable=False),
        sa.Column('expires_at', sa.Float(), nullable=True),
        sa.Column('metadata', sa.JSON(), nullable=False),
        sa.Column('tags', sa.JSON(), nullable=False),
        sa.Column('relationships', sa.JSON(), nullable=False),
        sa.Column('parent_id', sa.String(length=128), nullable=True),
        sa.Column('namespace', sa.String(length=128), server_default='default', nullable=False),
        sa.Column('session_id', sa.String(length=128), nullable=True),
        sa.Column('embedding', sa.LargeBinary(), nullable=True),
        sa.Column('content_hash', sa.String(length=64), nullable=True),
        sa.CheckConstraint("memory_tier IN ('short', 'medium', 'long')", name=op.f('ck_memories_memory_tier')),
        sa.ForeignKeyConstraint(['parent_id'], ['memories.memory_id'], name=op.f('fk_memories_parent_id_memories'), ondelete='SET NULL'),
        sa.PrimaryKeyConstraint('memory_id', name=op.f('pk_memories'))
    )
    op.create_index(op.f('ix_memories_content_hash'), 'memories', ['content_hash'], unique=False)
    op.create_index(op.f('ix_memories_created_at'), 'memories', ['created_at'], unique=False)
    op.create_index(op.f('ix_memories_expires_at'), 'memories', ['expires_at'], unique=False)
    op.create_index('ix_memories_importance_accessed', 'memories', ['importance', 'last_accessed_at'], unique=False)
    op.create_index(op.f('ix_memories_memory_tier'), 'memories', ['memory_tier'], unique=False)
    op.create_index(op.f('ix_memories_memory_type'), 'memories', ['memory_type'], unique=False)
    op.create_index(op.f('ix_memories_namespace'), 'memories', ['namespace'], unique=False)
    op.create_index('ix_memories_namespace_type', 'memories', ['namespace', 'memory_type'], unique=False)
    op.create_index(op.f('ix_memories_parent_id'), 'memories', ['parent_id'], unique=False)
    op.create_index(op.f('ix_memories_session_id'), 'memories', ['session_id'], unique=False)

    op.create_table('performance_logs',
        sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
        sa.Column('model_id', sa.String(length=128), nullable=False),
        sa.Column('success', sa.Boolean(), nullable=False),
        sa.Column('response_time', sa.Float(), server_default=sa.text('0.0'), nullable=False),
        sa.Column('error_message', sa.Text(), nullable=True),
        sa.Column('timestamp', sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_performance_logs'))
    )
    op.create_index(op.f('ix_performance_logs_model_id'), 'performance_logs', ['model_id'], unique=False)
    op.create_index('ix_performance_logs_model_time', 'performance_logs', ['model_id', 'timestamp'], unique=False)

    op.create_table('proactive_context_history',
        sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
        sa.Column('timestamp', sa.String(length=64), nullable=False),
        sa.Column('data', sa.JSON(), nullable=True),
        sa.Column('created_at', sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_proactive_context_history'))
    )
    op.create_index(op.f('ix_proactive_context_history_created_at'), 'proactive_context_history', ['created_at'], unique=False)

    op.create_table('session_summaries',
        sa.Column('session_id', sa.String(length=128), nullable=False),
        sa.Column('summary', sa.JSON(), nullable=False),
        sa.Column('updated_at', sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint('session_id', name=op.f('pk_session_summaries'))
    )

    op.create_table('sessions',
        sa.Column('session_id', sa.String(length=128), nullable=False),
        sa.Column('user_id', sa.String(length=128), server_default='default', nullable=False),
        sa.Column('session_type', sa.String(length=64), server_default='conversation', nullable=False),
        sa.Column('created_by', sa.String(length=128), nullable=True),
        sa.Column('metadata', sa.JSON(), nullable=False),
        sa.Column('created_at', sa.Float(), nullable=False),
        sa.Column('last_active_at', sa.Float(), nullable=False),
        sa.Column('expires_at', sa.Float(), nullable=True),
        sa.Column('expired', sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column('expired_at', sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint('session_id', name=op.f('pk_sessions'))
    )
    op.create_index('ix_sessions_expired_active', 'sessions', ['expired', 'last_active_at'], unique=False)
    op.create_index(op.f('ix_sessions_user_id'), 'sessions', ['user_id'], unique=False)

    op.create_table('trust_scores',
        sa.Column('model_id', sa.String(length=128), nullable=False),
        sa.Column('trust_score', sa.Float(), server_default=sa.text('0.5'), nullable=False),
        sa.Column('total_interactions', sa.Integer(), server_default=sa.text('0'), nullable=False),
        sa.Column('successful_interactions', sa.Integer(), server_default=sa.text('0'), nullable=False),
        sa.Column('last_updated', sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint('model_id', name=op.f('pk_trust_scores'))
    )

    op.create_table('users',
        sa.Column('user_id', sa.String(length=128), nullable=False),
        sa.Column('password_hash', sa.String(length=512), nullable=False),
        sa.Column('created_at', sa.Float(), nullable=False),
        sa.Column('last_login_at', sa.Float(), nullable=True),
        sa.Column('scopes', sa.JSON(), nullable=False),
        sa.Column('disabled', sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.PrimaryKeyConstraint('user_id', name=op.f('pk_users'))
    )

    op.create_table('context_items',
        sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
        sa.Column('context_id', sa.String(length=128), nullable=False),
        sa.Column('text', sa.Text(), nullable=False),
        sa.Column('speaker', sa.String(length=128), nullable=True),
        sa.Column('metadata', sa.JSON(), nullable=False),
        sa.Column('importance', sa.Float(), server_default=sa.text('0.5'), nullable=False),
        sa.Column('timestamp', sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(['context_id'], ['contexts.context_id'], name=op.f('fk_context_items_context_id_contexts'), ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_context_items'))
    )
    op.create_index('ix_context_items_context_time', 'context_items', ['context_id', 'timestamp'], unique=False)
    op.create_index(op.f('ix_context_items_speaker'), 'context_items', ['speaker'], unique=False)

    op.create_table('memory_group_mappings',
        sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
        sa.Column('memory_id', sa.String(length=128), nullable=False),
        sa.Column('group_id', sa.String(length=128), nullable=False),
        sa.Column('created_at', sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(['group_id'], ['context_groups.id'], name=op.f('fk_memory_group_mappings_group_id_context_groups'), ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['memory_id'], ['memories.memory_id'], name=op.f('fk_memory_group_mappings_memory_id_memories'), ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_memory_group_mappings')),
        sa.UniqueConstraint('memory_id', 'group_id', name=op.f('uq_memory_group_mappings_memory_id_group_id'))
    )
    op.create_index(op.f('ix_memory_group_mappings_group_id'), 'memory_group_mappings', ['group_id'], unique=False)
    op.create_index(op.f('ix_memory_group_mappings_memory_id'), 'memory_group_mappings', ['memory_id'], unique=False)

    op.create_table('memory_relationships',
        sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
        sa.Column('source_memory_id', sa.String(length=128), nullable=False),
        sa.Column('target_memory_id', sa.String(length=128), nullable=False),
        sa.Column('relationship_type', sa.String(length=64), nullable=False),
        sa.Column('strength', sa.Float(), server_default=sa.text('1.0'), nullable=False),
        sa.Column('created_at', sa.Float(), nullable=False),
        sa.Column('updated_at', sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(['source_memory_id'], ['memories.memory_id'], name=op.f('fk_memory_relationships_source_memory_id_memories'), ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['target_memory_id'], ['memories.memory_id'], name=op.f('fk_memory_relationships_target_memory_id_memories'), ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_memory_relationships')),
        sa.UniqueConstraint('source_memory_id', 'target_memory_id', 'relationship_type', name=op.f('uq_memory_relationships_source_memory_id_target_memory_id_relationship_type'))
    )
    op.create_index(op.f('ix_memory_relationships_relationship_type'), 'memory_relationships', ['relationship_type'], unique=False)
    op.create_index(op.f('ix_memory_relationships_source_memory_id'), 'memory_relationships', ['source_memory_id'], unique=False)
    op.create_index(op.f('ix_memory_relationships_target_memory_id'), 'memory_relationships', ['target_memory_id'], unique=False)


def downgrade() -> None:
    for table in TABLES_DROP_ORDER:
        op.drop_table(table)
