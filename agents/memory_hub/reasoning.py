"""UnifiedMemoryReasoningAgent's domain: digital twins, session interactions and summaries, error patterns.

Tables: ``digital_twins`` (user_id -> twin_data), ``interactions`` (per session, newest first when read),
``session_summaries`` (session_id -> summary dict), ``error_patterns`` (one row per error_type).

Behaviour of the legacy agent (pc2_code/agents/unified_memory_reasoning_agent.py), on SQL instead of JSON files:

* A session keeps its newest ``max_session_history`` (50) interactions. The write that takes it past that
  first stores a summary of all of them (``summarize``), then drops the oldest.
* A summary: ``last_updated``; ``code_context`` (if any ``code`` interactions: count and detected domains);
  ``conversation_summary`` (if any ``user_query``/``system_response``: exchanges count and the 3 newest,
  cut at 100 characters); ``errors_encountered`` (``error`` interactions categorized timeout / connection /
  permission / other).
* ``session_summary``: the stored summary; a session that has interactions but no stored summary yet gets
  one computed from them (the legacy code answered "New session" until the 51st interaction, see
  docs-repairs); an unknown session gets ``{last_updated, session_id, context: "New session: <id>"}``.
  With ``max_tokens`` the text parts are cut by ``token_compression_ratio`` until the summary fits.
* Error patterns are keyed by ``error_type`` (adding one again replaces it, count back to 1); the first
  pattern (in creation order) that ``re.search``-es an error message (case-insensitive) gives its
  solution and counts the occurrence. Patterns are compiled when added: an invalid one is refused.
"""
from __future__ import annotations

import json
import math
import re
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, func, select

from agents.memory_hub.stores.sql import SqlStore
from agents.memory_hub.stores.sql_models import DigitalTwin, ErrorPattern, Interaction, SessionSummary
from bus.errors import BadRequest, NotFound
from bus.settings import setting

@dataclass(frozen=True)
class ReasoningSettings:
    """The ``unified_memory_reasoning`` section."""

    max_session_history: int = setting(50, minimum=1)
    token_compression_ratio: float = setting(0.8, minimum=0.01, maximum=1.0)
    chars_per_token: float = setting(4.0, minimum=0.1,
                                     doc="max_tokens estimate of a summary: JSON length / chars_per_token")
    default_token_budget: int = setting(2000, minimum=1, doc="native get_context (packed memories)")

CODE_DOMAINS = ((r"database|sql|sqlite", "database operations"), (r"web|http|flask|api|route", "web functionality"),
                (r"concurrency|thread|async", "concurrency features"))
ERROR_KINDS = ("timeout", "connection", "permission")


# --------------------------------------------------------------------------- summaries (pure)

def summarize(entries: list[dict[str, Any]]) -> dict[str, Any]:
    """The legacy session summary of interactions given newest first (``{type, content}`` dicts)."""
    summary: dict[str, Any] = {"last_updated": time.time()}
    code = [e["content"] for e in entries if e["type"] == "code"]
    if code:
        summary["code_context"] = summarize_code(code)
    queries = [e["content"] for e in entries if e["type"] == "user_query"]
    responses = [e["content"] for e in entries if e["type"] == "system_response"]
    if queries or responses:
        summary["conversation_summary"] = summarize_conversation(queries, responses)
    summary["errors_encountered"] = [categorize_error(e["content"]) for e in entries if e["type"] == "error"]
    return summary


def summarize_code(snippets: list[str]) -> str:
    combined = "\n\n".join(snippets).lower()
    domains = [name for pattern, name in CODE_DOMAINS if re.search(pattern, combined)]
    text = f"Code Summary:\nTotal snippets: {len(snippets)}\n"
    if domains:
        text += f"Detected domains: {', '.join(domains)}\n"
    return text


def summarize_conversation(queries: list[str], responses: list[str]) -> str:
    text = f"Conversation Summary:\nTotal exchanges: {len(queries)}\n"
    if queries:
        text += "\nRecent exchanges:\n"
        for i in range(min(3, len(queries))):
            text += f"User: {queries[i][:100]}...\n"
            if i < len(responses):
                text += f"System: {responses[i][:100]}...\n"
    return text


def categorize_error(message: str) -> dict[str, str]:
    lowered = message.lower()
    kind = next((k for k in ERROR_KINDS if k in lowered), "other")
    return {"type": kind, "message": message}


def fit_tokens(summary: dict[str, Any], max_tokens: int, ratio: float, chars_per_token: float) -> dict[str, Any]:
    """Cut the text parts (code_context, conversation_summary) by ``ratio`` of their lines until it fits."""
    def tokens(obj: dict) -> int:
        return math.ceil(len(json.dumps(obj, default=str)) / chars_per_token)

    out = dict(summary)
    while tokens(out) > max_tokens:
        changed = False
        for key in ("code_context", "conversation_summary"):
            lines = str(out.get(key, "")).split("\n") if out.get(key) else []
            if lines:
                out[key] = "\n".join(lines[:int(len(lines) * ratio)])
                changed = True
        if not changed:
            break
    return out


# --------------------------------------------------------------------------- store

class ReasoningStore:
    def __init__(self, sql: SqlStore, section: ReasoningSettings = ReasoningSettings()) -> None:
        self.sql = sql
        self.s = section

    # ------------------------------------------------------------------ twins
    def update_twin(self, user_id: str, twin_data: Any) -> None:
        with self.sql.transaction() as session:
            row = session.get(DigitalTwin, user_id)
            if row is None:
                session.add(DigitalTwin(user_id=user_id, twin_data=twin_data))
            else:
                row.twin_data, row.updated_at = twin_data, time.time()

    def get_twin(self, user_id: str) -> Any | None:
        with self.sql.session() as session:
            row = session.get(DigitalTwin, user_id)
            return None if row is None else row.twin_data

    def delete_twin(self, user_id: str) -> bool:
        with self.sql.transaction() as session:
            return session.execute(delete(DigitalTwin).where(DigitalTwin.user_id == user_id)).rowcount > 0

    # ------------------------------------------------------------------ interactions
    def add_interaction(self, session_id: str, interaction_type: str, content: str,
                        metadata: dict | None = None) -> dict[str, Any]:
        """Insert; past ``max_session_history`` store the summary of all, then drop the oldest."""
        limit = self.s.max_session_history
        with self.sql.transaction() as session:
            row = Interaction(session_id=session_id, interaction_type=interaction_type, content=content,
                              meta=metadata or {}, timestamp=time.time())
            session.add(row)
            session.flush()
            rows = self._interactions(session, session_id, None)
            summarized = False
            if len(rows) > limit:
                self._store_summary(session, session_id, summarize([_entry(r) for r in rows]))
                for old in rows[limit:]:
                    session.delete(old)
                summarized = True
            return {"id": row.id, "session_id": session_id, "timestamp": row.timestamp, "summarized": summarized}

    def interactions(self, session_id: str, limit: int | None = None) -> list[dict[str, Any]]:
        with self.sql.session() as session:
            return [{**_entry(r), "timestamp": r.timestamp, "metadata": r.meta or {}}
                    for r in self._interactions(session, session_id, limit)]

    def session_summary(self, session_id: str, max_tokens: int | None = None) -> dict[str, Any]:
        with self.sql.session() as session:
            stored = session.get(SessionSummary, session_id)
            if stored is not None:
                summary = dict(stored.summary)
            else:
                rows = self._interactions(session, session_id, None)
                summary = summarize([_entry(r) for r in rows]) if rows else \
                    {"last_updated": time.time(), "session_id": session_id, "context": f"New session: {session_id}"}
        if max_tokens is not None:
            summary = fit_tokens(summary, max_tokens, self.s.token_compression_ratio,
                                 self.s.chars_per_token)
        return summary

    @staticmethod
    def _interactions(session: Any, session_id: str, limit: int | None) -> list[Interaction]:
        query = select(Interaction).where(Interaction.session_id == session_id) \
            .order_by(Interaction.timestamp.desc(), Interaction.id.desc())
        return list(session.scalars(query.limit(limit) if limit else query))

    @staticmethod
    def _store_summary(session: Any, session_id: str, summary: dict[str, Any]) -> None:
        row = session.get(SessionSummary, session_id)
        if row is None:
            session.add(SessionSummary(session_id=session_id, summary=summary))
        else:
            row.summary, row.updated_at = summary, time.time()

    # ------------------------------------------------------------------ error patterns
    def add_error_pattern(self, error_type: str, pattern: str, solution: str | None = None) -> None:
        try:
            re.compile(pattern, re.IGNORECASE)
        except re.error as exc:
            raise BadRequest(f"Invalid pattern: {exc}", details={"field": "pattern"}) from exc
        now = time.time()
        with self.sql.transaction() as session:
            row = session.scalars(select(ErrorPattern).where(ErrorPattern.error_type == error_type)).first()
            if row is None:
                row = ErrorPattern(error_type=error_type, created_at=now)
                session.add(row)
            row.pattern, row.solution, row.occurrences, row.last_seen = pattern, solution, 1, now

    def match_error(self, error_message: str) -> dict[str, Any] | None:
        """The first pattern matching the message (its occurrence counted), or None."""
        with self.sql.transaction() as session:
            for row in session.scalars(select(ErrorPattern).order_by(ErrorPattern.id)):
                try:
                    found = re.search(row.pattern, error_message, re.IGNORECASE)
                except re.error:
                    continue
                if found:
                    row.occurrences, row.last_seen = row.occurrences + 1, time.time()
                    return _pattern_dict(row)
        return None

    def error_patterns(self) -> list[dict[str, Any]]:
        with self.sql.session() as session:
            return [_pattern_dict(r) for r in session.scalars(select(ErrorPattern).order_by(ErrorPattern.id))]

    def delete_error_pattern(self, error_type: str) -> bool:
        with self.sql.transaction() as session:
            result = session.execute(delete(ErrorPattern).where(ErrorPattern.error_type == error_type))
            return result.rowcount > 0

    # ------------------------------------------------------------------ counts
    def totals(self) -> dict[str, int]:
        with self.sql.session() as session:
            return {
                "total_twins": session.scalar(select(func.count()).select_from(DigitalTwin)) or 0,
                "total_sessions": session.scalar(select(func.count(func.distinct(Interaction.session_id)))) or 0,
                "total_error_patterns": session.scalar(select(func.count()).select_from(ErrorPattern)) or 0,
            }


def _entry(row: Interaction) -> dict[str, Any]:
    return {"type": row.interaction_type, "content": row.content}


def _pattern_dict(row: ErrorPattern) -> dict[str, Any]:
    return {"error_type": row.error_type, "pattern": row.pattern, "solution": row.solution,
            "occurrences": row.occurrences, "last_seen": row.last_seen}


def require_twin(twin: Any | None, user_id: str) -> Any:
    if twin is None:
        raise NotFound(f"no digital twin for user {user_id}")
    return twin
