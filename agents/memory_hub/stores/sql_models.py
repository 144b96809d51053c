"""SQLAlchemy 2 models of every MemoryHub table (the SQL source of truth).

The schema only changes through Alembic (``migrations/memory_hub``); a test checks that these models and
the migrations agree. Times are epoch seconds (floats) unless a column says otherwise. JSON columns hold
dicts/lists; the Python attribute of a ``metadata`` column is ``meta`` (``metadata`` is reserved by
SQLAlchemy's declarative base).

Tables and the legacy agent each one serves:

* ``memories`` (MemoryOrchestratorService ``MemoryEntry``; facts of KnowledgeBase are rows of type
  ``knowledge_fact``; SessionMemoryAgent interactions are rows of type ``interaction``), plus
  ``memory_relationships``, ``context_groups``, ``memory_group_mappings``.
* ``sessions`` (SessionMemoryAgent), ``knowledge_base`` (documents of ``/doc/{doc_id}``),
  ``kv_entries`` (MemoryClient ``/kv/{key}``, msgpack values), ``contexts`` / ``context_items``
  (ContextManager), ``experiences`` (ExperienceTracker).
* UnifiedMemoryReasoningAgent: ``interactions``, ``session_summaries``, ``digital_twins``, ``error_patterns``.
* AuthenticationAgent ``users``; AgentTrustScorer ``trust_scores`` / ``performance_logs``;
  ProactiveContextMonitor ``proactive_context_history``.
"""
from __future__ import annotations

import hashlib
import time
import uuid
from typing import Any

from sqlalchemy import (JSON, Boolean, CheckConstraint, Float, ForeignKey, Index, Integer, LargeBinary, MetaData,
                        String, Text, UniqueConstraint, false)
from sqlalchemy import text as sql_text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, validates

from bus.idempotency import idempotency_table
from schemas.memory_hub.memory_orchestrator_service import TIERS

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

MEMORY_TIERS = TIERS     # one definition, with the request schemas
ID_LEN = 128          # ids chosen by clients (session ids, user ids, model ids, keys of documents)
KEY_LEN = 512         # KV keys


# Integer ids are never reused after a delete (SQLite AUTOINCREMENT): readers that track "rows after id N"
# (the proactive context monitor) must not miss or repeat rows.
AUTOINCREMENT = {"sqlite_autoincrement": True}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def now() -> float:
    return time.time()


def new_memory_id() -> str:
    return f"mem-{uuid.uuid4()}"


def new_group_id() -> str:
    return f"group-{uuid.uuid4()}"


def new_session_id() -> str:
    return f"session-{uuid.uuid4()}"


def new_doc_id() -> str:
    return f"doc-{uuid.uuid4()}"


def new_exp_id() -> str:
    return f"exp-{uuid.uuid4()}"


def content_hash(content: str) -> str:
    """sha256 hex of the UTF-8 content (dedupe and change detection)."""
    return hashlib.sha256(content.encode("utf-8", "surrogatepass")).hexdigest()


def _json(default: Any) -> Any:
    return mapped_column(JSON, nullable=False, default=default)


# --------------------------------------------------------------------------- memories (MOS)

class Memory(Base):
    __tablename__ = "memories"
    __table_args__ = (
        CheckConstraint("memory_tier IN ('short', 'medium', 'long')", name="memory_tier"),
        Index("ix_memories_namespace_type", "namespace", "memory_type"),
        Index("ix_memories_importance_accessed", "importance", "last_accessed_at"),
    )

    memory_id: Mapped[str] = mapped_column(String(ID_LEN), primary_key=True, default=new_memory_id)
    content: Mapped[str] = mapped_column(Text, nullable=False)
    memory_type: Mapped[str] = mapped_column(String(64), nullable=False, default="general",
                                             server_default="general", index=True)
    memory_tier: Mapped[str] = mapped_column(String(16), nullable=False, default="short",
                                             server_default="short", index=True)
    importance: Mapped[float] = mapped_column(Float, nullable=False, default=0.5, server_default=sql_text("0.5"))
    access_count: Mapped[int] = mapped_column(Integer, nullable=False, default=0, server_default=sql_text("0"))
    last_accessed_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    created_at: Mapped[float] = mapped_column(Float, nullable=False, default=now, index=True)
    updated_at: Mapped[float] = mapped_column(Float, nullable=False, default=now, onupdate=now)
    expires_at: Mapped[float | None] = mapped_column(Float, nullable=True, index=True)
    meta: Mapped[dict[str, Any]] = mapped_column("metadata", JSON, nullable=False, default=dict)
    tags: Mapped[list[str]] = _json(list)
    relationships: Mapped[dict[str, Any]] = _json(dict)
    parent_id: Mapped[str | None] = mapped_column(
        String(ID_LEN), ForeignKey("memories.memory_id", ondelete="SET NULL"), nullable=True, index=True)
    namespace: Mapped[str] = mapped_column(String(ID_LEN), nullable=False, default="default",
                                           server_default="default", index=True)
    session_id: Mapped[str | None] = mapped_column(String(ID_LEN), nullable=True, index=True)
    embedding: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)   # float32 little-endian
    content_hash: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)

    @validates("content")
    def _hash_content(self, _key: str, value: str) -> str:
        self.content_hash = content_hash(value) if value is not None else None
        return value


class MemoryRelationship(Base):
    __tablename__ = "memory_relationships"
    __table_args__ = (
        UniqueConstraint("source_memory_id", "target_memory_id", "relationship_type"),
        AUTOINCREMENT,
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    source_memory_id: Mapped[str] = mapped_column(
        String(ID_LEN), ForeignKey("memories.memory_id", ondelete="CASCADE"), nullable=False, index=True)
    target_memory_id: Mapped[str] = mapped_column(
        String(ID_LEN), ForeignKey("memories.memory_id", ondelete="CASCADE"), nullable=False, index=True)
    relationship_type: Mapped[str] = mapped_column(String(64), nullable=False, index=True)
    strength: Mapped[float] = mapped_column(Float, nullable=False, default=1.0, server_default=sql_text("1.0"))
    created_at: Mapped[float] = mapped_column(Float, nullable=False, default=now)
    updated_at: Mapped[float] = mapped_column(Float, nullable=False, default=now, onupdate=now)


class ContextGroup(Base):
    __tablename__ = "context_groups"

    id: Mapped[str] = mapped_column(String(ID_LEN), primary_key=True, default=new_group_id)
    name: Mapped[str] = mapped_column(String(255), nullable=False, index=True)
    description: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[float] = mapped_column(Float, nullable=False, default=now)
    updated_at: Mapped[float] = mapped_column(Float, nullable=False, default=now, onupdate=now)


class MemoryGroupMapping(Base):
    __tablename__ = "memory_group_mappings"
    __table_args__ = (UniqueConstraint("memory_id", "group_id"), AUTOINCREMENT)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    memory_id: Mapped[str] = mapped_column(
        String(ID_LEN), ForeignKey("memories.memory_id", ondelete="CASCADE"), nullable=False, index=True)
    group_id: Mapped[str] = mapped_column(
        String(ID_LEN), ForeignKey("context_groups.id", ondelete="CASCADE"), nullable=False, index=True)
    created_at: Mapped[float] = mapped_column(Float, nullable=False, default=now)


# --------------------------------------------------------------------------- sessions, documents, kv

class Session(Base):
    __tablename__ = "sessions"
    __table_args__ = (Index("ix_sessions_expired_active", "expired", "last_active_at"),)

    session_id: Mapped[str] = mapped_column(String(ID_LEN), primary_key=True, default=new_session_id)
    user_id: Mapped[str] = mapped_column(String(ID_LEN), nullable=False, default="default",
                                         server_default="default", index=True)
    session_type: Mapped[str] = mapped_column(String(64), nullable=False, default="conversation",
                                              server_default="conversation")
    created_by: Mapped[str | None] = mapped_column(String(ID_LEN), nullable=True)
    meta: Mapped[dict[str, Any]] = mapped_column("metadata", JSON, nullable=False, default=dict)
    created_at: Mapped[float] = mapped_column(Float, nullable=False, default=now)
    last_active_at: Mapped[float] = mapped_column(Float, nullable=False, default=now)
    expires_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    expired: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False, server_default=false())
    expired_at: Mapped[float | None] = mapped_column(Float, nullable=True)


class KnowledgeDocument(Base):
    __tablename__ = "knowledge_base"

    doc_id: Mapped[str] = mapped_column(String(ID_LEN), primary_key=True, default=new_doc_id)
    title: Mapped[str] = mapped_column(String(512), nullable=False, default="")
    content: Mapped[str] = mapped_column(Text, nullable=False)
    meta: Mapped[dict[str, Any]] = mapped_column("metadata", JSON, nullable=False, default=dict)
    namespace: Mapped[str] = mapped_column(String(ID_LEN), nullable=False, default="default",
                                           server_default="default", index=True)
    created_at: Mapped[float] = mapped_column(Float, nullable=False, default=now)
    updated_at: Mapped[float] = mapped_column(Float, nullable=False, default=now, onupdate=now, index=True)


class KVEntry(Base):
    """Durable key/value of MemoryClient: ``value`` is msgpack bytes (any msgpack-able value)."""

    __tablename__ = "kv_entries"

    key: Mapped[str] = mapped_column(String(KEY_LEN), primary_key=True)
    value: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    expires_at: Mapped[float | None] = mapped_column(Float, nullable=True, index=True)
    created_at: Mapped[float] = mapped_column(Float, nullable=False, default=now)
    updated_at: Mapped[float] = mapped_column(Float, nullable=False, default=now, onupdate=now)


# --------------------------------------------------------------------------- contexts, experiences

class Context(Base):
    __tablename__ = "contexts"

    context_id: Mapped[str] = mapped_column(String(ID_LEN), primary_key=True)
    window_size: Mapped[int] = mapped_column(Integer, nullable=False, default=10, server_default=sql_text("10"))
    meta: Mapped[dict[str, Any]] = mapped_column("metadata", JSON, nullable=False, default=dict)
    created_at: Mapped[float] = mapped_column(Float, nullable=False, default=now)
    updated_at: Mapped[float] = mapped_column(Float, nullable=False, default=now, onupdate=now)


class ContextItem(Base):
    __tablename__ = "context_items"
    __table_args__ = (Index("ix_context_items_context_time", "context_id", "timestamp"), AUTOINCREMENT)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    context_id: Mapped[str] = mapped_column(
        String(ID_LEN), ForeignKey("contexts.context_id", ondelete="CASCADE"), nullable=False)
    text: Mapped[str] = mapped_column(Text, nullable=False)
    speaker: Mapped[str | None] = mapped_column(String(ID_LEN), nullable=True, index=True)
    meta: Mapped[dict[str, Any]] = mapped_column("metadata", JSON, nullable=False, default=dict)
    importance: Mapped[float] = mapped_column(Float, nullable=False, default=0.5, server_default=sql_text("0.5"))
    timestamp: Mapped[float] = mapped_column(Float, nullable=False, default=now)


class Experience(Base):
    __tablename__ = "experiences"

    exp_id: Mapped[str] = mapped_column(String(ID_LEN), primary_key=True, default=new_exp_id)
    content: Mapped[Any] = mapped_column(JSON, nullable=False)
    memory_type: Mapped[str] = mapped_column(String(64), nullable=False, default="experience",
                                             server_default="experience", index=True)
    importance_score: Mapped[float] = mapped_column(Float, nullable=False, default=0.5,
                                                    server_default=sql_text("0.5"))
    meta: Mapped[dict[str, Any]] = mapped_column("metadata", JSON, nullable=False, default=dict)
    created_at: Mapped[float] = mapped_column(Float, nullable=False, default=now, index=True)
    expires_at: Mapped[float | None] = mapped_column(Float, nullable=True, index=True)


# --------------------------------------------------------------------------- UnifiedMemoryReasoningAgent

class Interaction(Base):
    __tablename__ = "interactions"
    __table_args__ = (Index("ix_interactions_session_time", "session_id", "timestamp"), AUTOINCREMENT)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    session_id: Mapped[str] = mapped_column(String(ID_LEN), nullable=False, index=True)
    interaction_type: Mapped[str] = mapped_column(String(64), nullable=False, index=True)
    content: Mapped[str] = mapped_column(Text, nullable=False)
    meta: Mapped[dict[str, Any]] = mapped_column("metadata", JSON, nullable=False, default=dict)
    timestamp: Mapped[float] = mapped_column(Float, nullable=False, default=now)


class SessionSummary(Base):
    __tablename__ = "session_summaries"

    session_id: Mapped[str] = mapped_column(String(ID_LEN), primary_key=True)
    summary: Mapped[dict[str, Any]] = _json(dict)
    updated_at: Mapped[float] = mapped_column(Float, nullable=False, default=now, onupdate=now)


class DigitalTwin(Base):
    __tablename__ = "digital_twins"

    user_id: Mapped[str] = mapped_column(String(ID_LEN), primary_key=True)
    twin_data: Mapped[dict[str, Any]] = _json(dict)
    created_at: Mapped[float] = mapped_column(Float, nullable=False, default=now)
    updated_at: Mapped[float] = mapped_column(Float, nullable=False, default=now, onupdate=now)


class ErrorPattern(Base):
    __tablename__ = "error_patterns"
    __table_args__ = (AUTOINCREMENT,)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    error_type: Mapped[str] = mapped_column(String(ID_LEN), nullable=False, index=True)
    pattern: Mapped[str] = mapped_column(Text, nullable=False)
    solution: Mapped[str | None] = mapped_column(Text, nullable=True)
    occurrences: Mapped[int] = mapped_column(Integer, nullable=False, default=0, server_default=sql_text("0"))
    last_seen: Mapped[float | None] = mapped_column(Float, nullable=True)
    created_at: Mapped[float] = mapped_column(Float, nullable=False, default=now)


# --------------------------------------------------------------------------- auth, trust, monitor

class User(Base):
    __tablename__ = "users"

    user_id: Mapped[str] = mapped_column(String(ID_LEN), primary_key=True)
    password_hash: Mapped[str] = mapped_column(String(512), nullable=False)
    created_at: Mapped[float] = mapped_column(Float, nullable=False, default=now)
    last_login_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    scopes: Mapped[list[str]] = _json(list)
    disabled: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False, server_default=false())


class TrustScore(Base):
    __tablename__ = "trust_scores"

    model_id: Mapped[str] = mapped_column(String(ID_LEN), primary_key=True)
    trust_score: Mapped[float] = mapped_column(Float, nullable=False, default=0.5, server_default=sql_text("0.5"))
    total_interactions: Mapped[int] = mapped_column(Integer, nullable=False, default=0, server_default=sql_text("0"))
    successful_interactions: Mapped[int] = mapped_column(Integer, nullable=False, default=0,
                                                         server_default=sql_text("0"))
    last_updated: Mapped[float] = mapped_column(Float, nullable=False, default=now, onupdate=now)


class PerformanceLog(Base):
    __tablename__ = "performance_logs"
    __table_args__ = (Index("ix_performance_logs_model_time", "model_id", "timestamp"), AUTOINCREMENT)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    model_id: Mapped[str] = mapped_column(String(ID_LEN), nullable=False, index=True)
    success: Mapped[bool] = mapped_column(Boolean, nullable=False)
    response_time: Mapped[float] = mapped_column(Float, nullable=False, default=0.0, server_default=sql_text("0.0"))
    error_message: Mapped[str | None] = mapped_column(Text, nullable=True)
    timestamp: Mapped[float] = mapped_column(Float, nullable=False, default=now)


class ProactiveContextEntry(Base):
    __tablename__ = "proactive_context_history"
    __table_args__ = (AUTOINCREMENT,)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    timestamp: Mapped[str] = mapped_column(String(64), nullable=False)     # ISO 8601, as the legacy agent
    data: Mapped[Any] = mapped_column(JSON, nullable=True)
    created_at: Mapped[float] = mapped_column(Float, nullable=False, default=now, index=True)


class RevokedToken(Base):
    """JWT ids revoked by logout, until the token would have expired (SQL truth; Redis db3 is the hot copy)."""

    __tablename__ = "revoked_tokens"

    jti: Mapped[str] = mapped_column(String(ID_LEN), primary_key=True)
    subject: Mapped[str | None] = mapped_column(String(ID_LEN), nullable=True)
    expires_at: Mapped[float] = mapped_column(Float, nullable=False, index=True)
    revoked_at: Mapped[float] = mapped_column(Float, nullable=False, default=now)


# native idempotency keys (bus/idempotency.py; revision 0004_idempotency_keys)
IDEMPOTENCY = idempotency_table("memory_hub_idempotency", Base.metadata)

TABLES = tuple(sorted(Base.metadata.tables))
