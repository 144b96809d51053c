"""SQLAlchemy tables of ModelManagerSuite (schema changes only through migrations/model_manager_suite).

* ``models``: one row per registry entry (scanned file or legacy configured model), with header facts,
  validity, operator settings (pinned, priority) and the memory measured after the last load.
* ``model_files``: sha256 cache keyed by path and checked against (size, mtime_ns), so a rescan of an
  unchanged file does not rehash it.
* ``model_stats``: cumulative counters per model id (loads, load time, requests, tokens, generation time).

Revision 0001 creates these; later revisions (predictive-loader usage, evaluation jobs) add their own
tables to the same ``Base.metadata`` from the modules listed in ``TABLE_MODULES``; ``full_metadata()``
imports them, so Alembic and the tests see every table of this tree.
"""
from __future__ import annotations

import importlib
from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, Float, Integer, MetaData, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from bus.idempotency import idempotency_table

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class ModelRow(Base):
    __tablename__ = "models"

    id: Mapped[str] = mapped_column(String(200), primary_key=True)
    version: Mapped[str | None] = mapped_column(String(16))
    path: Mapped[str] = mapped_column(Text, nullable=False)
    source: Mapped[str] = mapped_column(String(16), nullable=False, default="scan")   # scan | config
    present: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)
    size: Mapped[int | None] = mapped_column(BigInteger)
    mtime: Mapped[float | None] = mapped_column(Float)
    sha256: Mapped[str | None] = mapped_column(String(64))
    valid: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    invalid_reason: Mapped[str | None] = mapped_column(Text)
    display_name: Mapped[str | None] = mapped_column(String(200))
    architecture: Mapped[str | None] = mapped_column(String(64))
    model_name: Mapped[str | None] = mapped_column(String(200))
    quantization: Mapped[str | None] = mapped_column(String(32))
    context_length: Mapped[int | None] = mapped_column(Integer)
    parameter_count: Mapped[int | None] = mapped_column(BigInteger)
    header: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    config: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    pinned: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    priority: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    estimated_memory_mb: Mapped[float | None] = mapped_column(Float)
    measured_memory_mb: Mapped[float | None] = mapped_column(Float)
    measured_version: Mapped[str | None] = mapped_column(String(16))
    measured_n_ctx: Mapped[int | None] = mapped_column(Integer)
    measured_device: Mapped[str | None] = mapped_column(String(32))
    measured_at: Mapped[float | None] = mapped_column(Float)
    first_seen: Mapped[float] = mapped_column(Float, nullable=False)
    updated_at: Mapped[float] = mapped_column(Float, nullable=False)


class ModelFileRow(Base):
    __tablename__ = "model_files"

    path: Mapped[str] = mapped_column(Text, primary_key=True)
    size: Mapped[int] = mapped_column(BigInteger, nullable=False)
    mtime_ns: Mapped[int] = mapped_column(BigInteger, nullable=False)
    sha256: Mapped[str] = mapped_column(String(64), nullable=False)
    hashed_at: Mapped[float] = mapped_column(Float, nullable=False)


class ModelStatsRow(Base):
    __tablename__ = "model_stats"

    model_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    loads: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    load_failures: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    total_load_s: Mapped[float] = mapped_column(Float, nullable=False, default=0.0)
    last_load_s: Mapped[float | None] = mapped_column(Float)
    requests: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    errors: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    prompt_tokens: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    tokens_generated: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    generation_s: Mapped[float] = mapped_column(Float, nullable=False, default=0.0)
    last_used: Mapped[float | None] = mapped_column(Float)
    updated_at: Mapped[float] = mapped_column(Float, nullable=False)


# native idempotency keys (bus/idempotency.py; revision 0003_idempotency_keys)
IDEMPOTENCY = idempotency_table("model_suite_idempotency", Base.metadata)

metadata = Base.metadata

# other modules declaring tables on ``Base`` (revision 0002+)
TABLE_MODULES = ("agents.model_manager_suite.eval_models", "agents.model_manager_suite.model_facts")


def full_metadata() -> MetaData:
    """``Base.metadata`` with the tables of every module of this Alembic tree registered."""
    for name in TABLE_MODULES:
        importlib.import_module(name)
    return Base.metadata
