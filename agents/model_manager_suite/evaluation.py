"""ModelEvaluationFramework records: performance metrics and model evaluation scores, in SQL.

Validation is the legacy agent's own: the pydantic models of ``common/utils/learning_models.py``
(``PerformanceMetric``, ``ModelEvaluationScore``), so a refused record gets the same pydantic message.
Beyond the legacy models (docs-repairs/ModelEvaluationFramework.md): ``accuracy`` and ``f1_score`` must be
in 0..1, ``avg_latency_ms`` >= 0, numbers must be finite (NaN/inf cannot be stored as JSON), names are at
most 200 characters and ``context`` / ``comparison_data`` at most 64 KiB of JSON.

Rows are stored as the legacy agent stored them (ids as strings, timestamps as ``isoformat()``) and read
back newest first by that timestamp; replies carry ids as strings and timestamps as ISO-8601 strings.
"""
from __future__ import annotations

import json
import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from sqlalchemy import distinct, func, select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import sessionmaker

from agents.model_manager_suite.store import db_guard, engine_ping
from bus.errors import BadRequest, Conflict

from .eval_models import ModelEvaluationScoreRow, PerformanceMetricRow

MAX_JSON_BYTES = 64 * 1024
MAX_ROWS = 10_000      # cap of a query's limit (the legacy LIMIT -1 = "all" is served as at most this)


def _utcnow() -> datetime:
    return datetime.utcnow()


class _Strict(BaseModel):
    model_config = ConfigDict(allow_inf_nan=False, str_max_length=200)

    @field_validator("context", "comparison_data", check_fields=False)
    @classmethod
    def _json_size(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is not None and len(json.dumps(value, default=str)) > MAX_JSON_BYTES:
            raise ValueError(f"must be at most {MAX_JSON_BYTES} bytes of JSON")
        return value


class PerformanceMetric(_Strict):
    metric_id: uuid.UUID = Field(default_factory=uuid.uuid4)
    agent_name: str
    metric_name: str
    value: float
    timestamp: datetime = Field(default_factory=_utcnow)
    context: dict[str, Any] | None = None


class ModelEvaluationScore(_Strict):
    evaluation_id: uuid.UUID = Field(default_factory=uuid.uuid4)
    model_name: str
    cycle_id: uuid.UUID
    trust_score: float = Field(..., ge=0.0, le=1.0)
    accuracy: float | None = Field(default=None, ge=0.0, le=1.0)
    f1_score: float | None = Field(default=None, ge=0.0, le=1.0)
    avg_latency_ms: float = Field(..., ge=0.0)
    evaluation_timestamp: datetime = Field(default_factory=_utcnow)
    comparison_data: dict[str, Any] | None = None


def parse(model: type[BaseModel], data: Any) -> BaseModel:
    """Validate like ``Model(**data)``; ``BadRequest`` with the pydantic message (legacy wording)."""
    if not isinstance(data, dict):
        raise BadRequest(f"{model.__name__}() argument after ** must be a mapping, not {type(data).__name__}")
    try:
        return model(**{str(k): v for k, v in data.items()})
    except ValidationError as exc:
        raise BadRequest(str(exc)) from None


class EvaluationRecords:
    """The two legacy MEF tables; every method is one short transaction (thread-safe)."""

    def __init__(self, engine: Engine):
        self.engine = engine
        self._session = sessionmaker(engine, expire_on_commit=False)

    def log_metric(self, data: Any) -> str:
        metric = parse(PerformanceMetric, data)
        assert isinstance(metric, PerformanceMetric)
        row = PerformanceMetricRow(metric_id=str(metric.metric_id), agent_name=metric.agent_name,
                                   metric_name=metric.metric_name, value=metric.value,
                                   timestamp=metric.timestamp.isoformat(), context=metric.context or None)
        self._insert(row)
        return row.metric_id

    def metrics(self, agent_name: str | None = None, metric_name: str | None = None,
                limit: int = 10) -> list[dict[str, Any]]:
        query = select(PerformanceMetricRow)
        if agent_name:
            query = query.where(PerformanceMetricRow.agent_name == agent_name)
        if metric_name:
            query = query.where(PerformanceMetricRow.metric_name == metric_name)
        query = query.order_by(PerformanceMetricRow.timestamp.desc()).limit(_limit(limit))
        with db_guard("evaluation database"), self._session.begin() as s:
            rows = list(s.scalars(query))
        return [_metric_reply(r) for r in rows]

    def log_evaluation(self, data: Any) -> str:
        score = parse(ModelEvaluationScore, data)
        assert isinstance(score, ModelEvaluationScore)
        row = ModelEvaluationScoreRow(
            evaluation_id=str(score.evaluation_id), model_name=score.model_name, cycle_id=str(score.cycle_id),
            trust_score=score.trust_score, accuracy=score.accuracy, f1_score=score.f1_score,
            avg_latency_ms=score.avg_latency_ms, evaluation_timestamp=score.evaluation_timestamp.isoformat(),
            comparison_data=score.comparison_data or None)
        self._insert(row)
        return row.evaluation_id

    def evaluations(self, model_name: str | None = None, limit: int = 10) -> list[dict[str, Any]]:
        query = select(ModelEvaluationScoreRow)
        if model_name:
            query = query.where(ModelEvaluationScoreRow.model_name == model_name)
        query = query.order_by(ModelEvaluationScoreRow.evaluation_timestamp.desc()).limit(_limit(limit))
        with db_guard("evaluation database"), self._session.begin() as s:
            rows = list(s.scalars(query))
        return [_evaluation_reply(r) for r in rows]

    def stats(self) -> dict[str, int]:
        """The legacy ``get_stats`` counters, counted in SQL (they survive restarts)."""
        with db_guard("evaluation database"), self._session.begin() as s:
            logs = s.scalar(select(func.count()).select_from(PerformanceMetricRow)) or 0
            updates = s.scalar(select(func.count()).select_from(ModelEvaluationScoreRow)) or 0
            models = s.scalar(select(func.count(distinct(ModelEvaluationScoreRow.model_name)))) or 0
        return {"performance_logs": int(logs), "trust_score_updates": int(updates), "models_tracked": int(models)}

    def ping(self) -> bool:
        return engine_ping(self.engine)

    def _insert(self, row: Any) -> None:
        try:
            with db_guard("evaluation database"), self._session.begin() as s:
                s.add(row)
        except IntegrityError as exc:      # a client-chosen id that exists: the legacy sqlite3 message
            raise Conflict(str(exc.orig)) from None


def _limit(raw: Any) -> int:
    """SQLite LIMIT semantics of the legacy query (negative = no limit), capped at ``MAX_ROWS``."""
    if isinstance(raw, bool):
        raise BadRequest("limit must be an integer")
    try:
        limit = int(raw)
    except (TypeError, ValueError):
        raise BadRequest(f"limit must be an integer, got {raw!r}") from None
    return MAX_ROWS if limit < 0 else min(limit, MAX_ROWS)


def _metric_reply(row: PerformanceMetricRow) -> dict[str, Any]:
    return {"metric_id": row.metric_id, "agent_name": row.agent_name, "metric_name": row.metric_name,
            "value": row.value, "timestamp": _iso(row.timestamp), "context": row.context}


def _evaluation_reply(row: ModelEvaluationScoreRow) -> dict[str, Any]:
    return {"evaluation_id": row.evaluation_id, "model_name": row.model_name, "cycle_id": row.cycle_id,
            "trust_score": row.trust_score, "accuracy": row.accuracy, "f1_score": row.f1_score,
            "avg_latency_ms": row.avg_latency_ms, "evaluation_timestamp": _iso(row.evaluation_timestamp),
            "comparison_data": row.comparison_data}


def _iso(stored: str) -> str:
    """As pydantic's JSON mode renders the legacy ``datetime.fromisoformat(stored)``."""
    try:
        value = datetime.fromisoformat(stored)
    except ValueError:
        return stored
    text = value.isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text

