"""ExperienceTracker's domain: experiences stored in the ``experiences`` table (no forwarding).

The legacy agent forwarded ``store_memory`` / ``retrieve_memory`` to an "EpisodicMemoryAgent" on
localhost:7106 that no longer exists (that port is UnifiedMemoryReasoningAgent's health port); the hub
keeps experiences itself. An experience: ``exp_id`` (``exp-<uuid>`` unless the caller chose one),
``content`` (text or a JSON object), ``importance_score`` in [0, 1], ``metadata``, ``created_at`` and an
optional ``expires_at`` (epoch seconds). Expired experiences are never returned and are deleted by the next
write.
"""
from __future__ import annotations

import time
from datetime import datetime, UTC
from typing import Any

from sqlalchemy import delete, select

from agents.memory_hub.stores.sql import SqlStore
from agents.memory_hub.stores.sql_models import Experience, new_exp_id
from bus.errors import BadRequest, NotFound

MAX_LIMIT = 1000


def parse_time(value: Any, field: str = "expires_at") -> float | None:
    """Epoch seconds from a number or an ISO-8601 string (naive = local time); None stays None."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise BadRequest(f"{field} must be an ISO-8601 string or epoch seconds", details={"field": field})
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value.strip().replace("Z", "+00:00")).timestamp()
        except ValueError as exc:
            raise BadRequest(f"{field} is not an ISO-8601 time: {value[:64]!r}", details={"field": field}) from exc
    raise BadRequest(f"{field} must be an ISO-8601 string or epoch seconds", details={"field": field})


def iso(epoch: float | None) -> str | None:
    return None if epoch is None else datetime.fromtimestamp(epoch, UTC).isoformat()


def experience_dict(row: Experience) -> dict[str, Any]:
    return {"exp_id": row.exp_id, "content": row.content, "memory_type": row.memory_type,
            "importance_score": row.importance_score, "metadata": row.meta or {},
            "created_at": row.created_at, "expires_at": row.expires_at}


class ExperienceStore:
    def __init__(self, sql: SqlStore) -> None:
        self.sql = sql

    def track(self, content: Any, importance_score: float = 0.5, metadata: dict | None = None,
              expires_at: float | None = None, exp_id: str | None = None) -> dict[str, Any]:
        """Insert (or, with a known ``exp_id``, replace) an experience; returns it."""
        now = time.time()
        with self.sql.transaction() as session:
            session.execute(delete(Experience).where(Experience.expires_at.is_not(None), Experience.expires_at <= now))
            row = session.get(Experience, exp_id) if exp_id else None
            if row is None:
                row = Experience(exp_id=exp_id or new_exp_id(), created_at=now)
                session.add(row)
            row.content, row.importance_score = content, float(importance_score)
            row.meta, row.expires_at = metadata or {}, expires_at
            session.flush()
            return experience_dict(row)

    def recent(self, limit: int = 10, min_importance: float | None = None) -> list[dict[str, Any]]:
        """Live experiences, newest first."""
        query = select(Experience).where(_live(time.time()))
        if min_importance is not None:
            query = query.where(Experience.importance_score >= min_importance)
        query = query.order_by(Experience.created_at.desc(), Experience.exp_id.desc()).limit(limit)
        with self.sql.session() as session:
            return [experience_dict(row) for row in session.scalars(query)]

    def get(self, exp_id: str) -> dict[str, Any]:
        with self.sql.session() as session:
            row = session.scalars(select(Experience).where(Experience.exp_id == exp_id, _live(time.time()))).first()
            if row is None:
                raise NotFound(f"no experience {exp_id}")
            return experience_dict(row)

    def delete(self, exp_id: str) -> bool:
        with self.sql.transaction() as session:
            return session.execute(delete(Experience).where(Experience.exp_id == exp_id)).rowcount > 0


def _live(now: float) -> Any:
    return (Experience.expires_at.is_(None)) | (Experience.expires_at > now)
