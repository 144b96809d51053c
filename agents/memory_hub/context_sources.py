"""SQL reads of ProactiveContextMonitor: the poll fallback and the keyword match for related memories.

``sql`` is an ``agents.memory_hub.stores.sql.SqlStore``; every function reads in one short session and
returns plain values. New rows are found by watermarks (``created_at`` for memories and sessions, the
autoincrement id for context items), at most ``POLL_BATCH`` per call (the next poll continues).
"""
from __future__ import annotations

from typing import Any

from sqlalchemy import func, or_, select

from agents.memory_hub.stores.sql_models import ContextItem, Memory, Session

POLL_BATCH = 200
CANDIDATES = 200


def memory_content(sql: Any, memory_id: str) -> str:
    if sql is None or not memory_id:
        return ""
    with sql.session() as session:
        row = session.get(Memory, memory_id)
        return row.content if row is not None else ""


def max_context_item_id(sql: Any) -> int:
    with sql.session() as session:
        return int(session.execute(select(func.max(ContextItem.id))).scalar() or 0)


def new_sessions(sql: Any, since: float) -> list[float]:
    query = (select(Session.created_at).where(Session.created_at > since)
             .order_by(Session.created_at).limit(POLL_BATCH))
    with sql.session() as session:
        return [float(v) for v in session.scalars(query)]


def new_context_items(sql: Any, after_id: float) -> list[tuple[int, str]]:
    query = (select(ContextItem.id, ContextItem.text).where(ContextItem.id > after_id)
             .order_by(ContextItem.id).limit(POLL_BATCH))
    with sql.session() as session:
        return [(int(i), str(t)) for i, t in session.execute(query)]


def new_memories(sql: Any, since: float) -> list[tuple[str, str, float]]:
    query = (select(Memory.memory_id, Memory.content, Memory.created_at).where(Memory.created_at > since)
             .order_by(Memory.created_at).limit(POLL_BATCH))
    with sql.session() as session:
        return [(m, c, float(t)) for m, c, t in session.execute(query)]


def keyword_related(sql: Any, text: str, limit: int, min_score: float) -> list[dict[str, Any]]:
    """Memories sharing at least ``min_score`` of ``text``'s keywords, best first."""
    from agents.memory_hub.context_monitor import keywords

    words = keywords(text)
    if sql is None or not words:
        return []
    probes = sorted(words, key=lambda w: (-len(w), w))[:8]
    query = (select(Memory.memory_id, Memory.content)
             .where(or_(*(Memory.content.ilike(f"%{_escape(w)}%", escape="\\") for w in probes)))
             .order_by(Memory.created_at.desc()).limit(CANDIDATES))
    with sql.session() as session:
        rows = list(session.execute(query))
    scored = []
    for memory_id, content in rows:
        score = len(words & keywords(content)) / len(words)
        if score >= min_score:
            scored.append({"memory_id": memory_id, "content": content[:300], "score": round(score, 4)})
    scored.sort(key=lambda m: -m["score"])
    return scored[:limit]


def _escape(word: str) -> str:
    return word.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
