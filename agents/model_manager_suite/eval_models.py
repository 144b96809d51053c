"""SQL tables of the PredictiveLoader and the ModelEvaluationFramework (revision 0002).

They live on the same declarative ``Base`` as ``sql_models`` (one metadata, one database, one Alembic
tree). Times are epoch floats except the two legacy MEF tables, whose timestamps are ISO-8601 strings
exactly as the legacy agent stored them (``datetime.isoformat()``).

* ``model_usage``: one row per model request (the usage log the predictors learn from).
* ``usage_models``: the order in which models were first recorded (the legacy heuristic breaks count
  ties by that order, see ``predictor.legacy_top``).
* ``preloads``: every preload and its outcome (``pending`` until a request uses it = ``hit``, or it is
  unloaded unused = ``wasted``).
* ``performance_metrics`` / ``model_evaluation_scores``: the legacy MEF tables.
* ``eval_jobs``: evaluation jobs (perplexity, latency, A/B) with the model id + version + sha256 they ran on.
"""
from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, Boolean, Float, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from .sql_models import Base


class ModelUsageRow(Base):
    __tablename__ = "model_usage"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    model_id: Mapped[str] = mapped_column(String(200), nullable=False, index=True)
    ts: Mapped[float] = mapped_column(Float, nullable=False, index=True)
    source: Mapped[str] = mapped_column(String(32), nullable=False, default="request")
    was_loaded: Mapped[bool | None] = mapped_column(Boolean)


class UsageModelRow(Base):
    __tablename__ = "usage_models"

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    model_id: Mapped[str] = mapped_column(String(200), nullable=False, unique=True)
    first_used: Mapped[float] = mapped_column(Float, nullable=False)


class PreloadRow(Base):
    __tablename__ = "preloads"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    model_id: Mapped[str] = mapped_column(String(200), nullable=False, index=True)
    version: Mapped[str | None] = mapped_column(String(16))
    ts: Mapped[float] = mapped_column(Float, nullable=False)
    score: Mapped[float | None] = mapped_column(Float)
    reason: Mapped[str] = mapped_column(String(32), nullable=False, default="prediction")
    outcome: Mapped[str] = mapped_column(String(16), nullable=False, default="pending", index=True)
    resolved_at: Mapped[float | None] = mapped_column(Float)


class PerformanceMetricRow(Base):
    __tablename__ = "performance_metrics"

    metric_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    agent_name: Mapped[str] = mapped_column(String(200), nullable=False, index=True)
    metric_name: Mapped[str] = mapped_column(String(200), nullable=False)
    value: Mapped[float] = mapped_column(Float, nullable=False)
    timestamp: Mapped[str] = mapped_column(String(40), nullable=False, index=True)
    context: Mapped[dict[str, Any] | None] = mapped_column(JSON)


class ModelEvaluationScoreRow(Base):
    __tablename__ = "model_evaluation_scores"

    evaluation_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    model_name: Mapped[str] = mapped_column(String(200), nullable=False, index=True)
    cycle_id: Mapped[str] = mapped_column(String(64), nullable=False)
    trust_score: Mapped[float] = mapped_column(Float, nullable=False)
    accuracy: Mapped[float | None] = mapped_column(Float)
    f1_score: Mapped[float | None] = mapped_column(Float)
    avg_latency_ms: Mapped[float] = mapped_column(Float, nullable=False)
    evaluation_timestamp: Mapped[str] = mapped_column(String(40), nullable=False, index=True)
    comparison_data: Mapped[dict[str, Any] | None] = mapped_column(JSON)


class EvalJobRow(Base):
    __tablename__ = "eval_jobs"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16), nullable=False)           # evaluate | ab
    status: Mapped[str] = mapped_column(String(16), nullable=False, index=True)
    model_id: Mapped[str] = mapped_column(String(200), nullable=False, index=True)
    model_version: Mapped[str | None] = mapped_column(String(16))
    model_sha256: Mapped[str | None] = mapped_column(String(64))
    model_b_id: Mapped[str | None] = mapped_column(String(200))
    model_b_version: Mapped[str | None] = mapped_column(String(16))
    model_b_sha256: Mapped[str | None] = mapped_column(String(64))
    params: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False)
    progress: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    results: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[float] = mapped_column(Float, nullable=False)
    started_at: Mapped[float | None] = mapped_column(Float)
    finished_at: Mapped[float | None] = mapped_column(Float)


EVAL_TABLES = ("model_usage", "usage_models", "preloads", "performance_metrics", "model_evaluation_scores",
               "eval_jobs")
