"""ContextManager's domain: an adaptive, importance-scored context window per context id, kept in SQL.

Tables ``contexts`` (one row per context id: ``window_size``, and in ``metadata`` the per-speaker clear
marks) and ``context_items`` (``text``, ``speaker``, ``metadata``, ``importance``, ``timestamp``).

Behaviour (the legacy ``ContextManager`` class, pc2_code/agents/context_manager.py, on SQL instead of deques):

* Importance of a text: 0.5, +0.2 per important keyword it contains (remember, don't forget, important,
  critical, essential, alalahanin, tandaan, mahalaga, importante, kailangan), +0.1 if it has a ``?``,
  +0.1 if a request pattern matches (please/paki/pakiusap, can/could/would you, i want/need/would like,
  gusto ko/kailangan ko), +0.1 if it has more than 15 words; clamped to [0, 1]. Native callers may give
  the importance explicitly.
* The general window holds the newest ``window_size`` items (initial 10). After each add, the average
  importance of the window moves the size: above 0.7 it grows by 2 (at most 20), below 0.3 it shrinks by 1
  (at least 5). Each speaker also has a view of its newest 20 items. Items in neither view are deleted.
* ``get`` sorts by (importance, timestamp) descending; with a speaker that has a view, that view, else the
  general window (as the legacy code). ``text`` renders ``[speaker]: text`` lines.
* ``prune`` (only when the window is full) deletes window items below 0.5, at most a quarter of the window.
* Reads are served from a copy of the whole context in Redis db0 (``ctx:{context_id}``) while it is current
  (``hot_cache.HotCache``: every write invalidates it after its commit), else from SQL.
* ``clear(speaker)`` empties that speaker's view (the general window keeps its items, as the legacy
  code); ``clear()`` deletes every item of the context (the legacy code logged "Cleared all context" but
  left the speaker views behind; see docs-repairs/ContextManager.md).
"""
from __future__ import annotations

import contextlib
import re
import time
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any
from collections.abc import Iterator

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from agents.memory_hub.hot_cache import HotCache
from agents.memory_hub.stores.sql import SqlStore
from agents.memory_hub.stores.sql_models import Context, ContextItem
from bus.settings import SettingError, setting

IMPORTANT_KEYWORDS = ("remember", "don't forget", "important", "critical", "essential",
                      "alalahanin", "tandaan", "mahalaga", "importante", "kailangan")
REQUEST_PATTERNS = tuple(re.compile(p) for p in (
    r"\b(please|paki|pakiusap)\b", r"\b(can you|could you|would you)\b",
    r"\b(i want|i need|i would like)\b", r"\b(gusto ko|kailangan ko)\b"))

@dataclass(frozen=True)
class ContextWindowSettings:
    """The ``context_manager`` section."""

    legacy_context_id: str = setting("default", doc="the context legacy requests (which carry no id) use")
    min_size: int = setting(5, minimum=1)
    max_size: int = setting(20, minimum=1, doc="also the size of each speaker's view")
    initial_size: int = setting(10, minimum=1)
    grow_above: float = setting(0.7, minimum=0.0, maximum=1.0,
                                doc="average importance above which the window grows by 2")
    shrink_below: float = setting(0.3, minimum=0.0, maximum=1.0, doc="... below which it shrinks by 1")
    importance_threshold: float = setting(0.5, minimum=0.0, maximum=1.0,
                                          doc="prune removes window items below this")
    max_text_chars: int = setting(20000, minimum=1)
    cache_ttl_s: float = setting(3600.0, minimum=1.0, doc="Redis copy ctx:{context_id} of a whole context")
    cache_retry_s: float = setting(5.0, minimum=0.0, doc="after a Redis failure, skip Redis this long")

    def __post_init__(self) -> None:
        if not self.min_size <= self.initial_size <= self.max_size:
            raise SettingError("initial_size", f"must be between min_size ({self.min_size}) and max_size "
                                               f"({self.max_size}), got {self.initial_size}")


def importance_of(text: str) -> float:
    """The legacy importance score of a text (see the module docstring)."""
    lowered = text.lower()
    score = 0.5 + 0.2 * sum(1 for keyword in IMPORTANT_KEYWORDS if keyword in lowered)
    if "?" in text:
        score += 0.1
    if any(pattern.search(lowered) for pattern in REQUEST_PATTERNS):
        score += 0.1
    if len(text.split()) > 15:
        score += 0.1
    return round(min(1.0, max(0.0, score)), 6)


def item_dict(row: ContextItem) -> dict[str, Any]:
    """The legacy item shape plus the row id."""
    return {"item_id": row.id, "text": row.text, "speaker": row.speaker, "metadata": row.meta or {},
            "importance": row.importance, "timestamp": row.timestamp}


class ContextWindows:
    """All context windows; every method is one SQL transaction (writers are serialized by SQLite)."""

    def __init__(self, sql: SqlStore, section: ContextWindowSettings = ContextWindowSettings(),
                 redis: Any = None) -> None:
        self.sql = sql
        self.s = section
        self.cache = HotCache(redis.ns("ctx") if redis is not None else None, self.s.cache_ttl_s,
                              self.s.cache_retry_s)

    @contextlib.contextmanager
    def _writing(self, context_id: str) -> Iterator[Session]:
        """One transaction on a context; its Redis copy is invalidated after the commit."""
        with self.sql.transaction() as session:
            yield session
        self.cache.invalidate(context_id)

    # ------------------------------------------------------------------ writes
    def add(self, context_id: str, text: str, speaker: str | None = None, metadata: dict | None = None,
            importance: float | None = None) -> dict[str, Any]:
        """Append an item, adapt the window size, drop items no view holds; returns the item + window_size."""
        with self._writing(context_id) as session:
            ctx = self._context(session, context_id, create=True)
            rows = self._rows(session, context_id)
            stamp = max(time.time(), (rows[-1].timestamp + 1e-5) if rows else 0.0,
                        float(ctx.meta.get("last_ts", 0.0)) + 1e-5)
            item = ContextItem(context_id=context_id, text=text, speaker=speaker or None, meta=metadata or {},
                               importance=importance_of(text) if importance is None else float(importance),
                               timestamp=stamp)
            session.add(item)
            session.flush()
            rows.append(item)
            ctx.window_size = self._adapted_size(ctx.window_size, self._window(rows, ctx.window_size))
            ctx.meta = {**ctx.meta, "last_ts": stamp}
            self._collect(session, ctx, rows)
            return {**item_dict(item), "context_id": context_id, "window_size": ctx.window_size}

    def clear(self, context_id: str, speaker: str | None = None) -> int:
        """Empty a speaker's view, or the whole context; returns how many items left the view/context."""
        with self._writing(context_id) as session:
            ctx = self._context(session, context_id, create=False)
            if ctx is None:
                return 0
            rows = self._rows(session, context_id)
            if speaker is not None and not self._has_view(ctx, rows, speaker):
                return 0
            if speaker is None:
                session.execute(delete(ContextItem).where(ContextItem.context_id == context_id))
                ctx.meta = {"last_ts": ctx.meta.get("last_ts", 0.0)}
                return len(rows)
            cleared = len(self._speaker_view(ctx, rows, speaker))
            marks = dict(ctx.meta.get("speaker_cleared_at", {}))
            marks[speaker] = max([r.timestamp for r in rows] + [float(ctx.meta.get("last_ts", 0.0))])
            ctx.meta = {**ctx.meta, "speaker_cleared_at": marks}
            self._collect(session, ctx, rows)
            return cleared

    def prune(self, context_id: str) -> int:
        """Delete low-importance window items (only when the window is full); returns how many."""
        with self._writing(context_id) as session:
            ctx = self._context(session, context_id, create=False)
            if ctx is None:
                return 0
            window = self._window(self._rows(session, context_id), ctx.window_size)
            if len(window) < ctx.window_size:
                return 0
            low = [r for r in window if r.importance < self.s.importance_threshold]
            victims = low[:max(1, ctx.window_size // 4)]
            for row in victims:
                session.delete(row)
            return len(victims)

    def delete(self, context_id: str) -> bool:
        with self._writing(context_id) as session:
            ctx = self._context(session, context_id, create=False)
            if ctx is None:
                return False
            session.execute(delete(ContextItem).where(ContextItem.context_id == context_id))
            session.delete(ctx)
            return True

    # ------------------------------------------------------------------ reads
    def get(self, context_id: str, speaker: str | None = None, max_items: int | None = None) -> list[dict[str, Any]]:
        """Items of the speaker's view (if it has one) or of the general window, most important first."""
        ctx, rows = self._snapshot(context_id)
        if ctx is None:
            return []
        if speaker and self._has_view(ctx, rows, speaker):
            chosen = self._speaker_view(ctx, rows, speaker)
        else:
            chosen = self._window(rows, ctx.window_size)
        chosen.sort(key=lambda r: (r.importance, r.timestamp, r.id), reverse=True)
        return [item_dict(r) for r in (chosen[:max_items] if max_items else chosen)]

    def text(self, context_id: str, speaker: str | None = None, max_items: int | None = None) -> str:
        return "\n".join(f"[{i['speaker']}]: {i['text']}" if i["speaker"] else i["text"]
                         for i in self.get(context_id, speaker, max_items))

    def info(self, context_id: str) -> dict[str, Any]:
        ctx, rows = self._snapshot(context_id)
        size = ctx.window_size if ctx is not None else self.s.initial_size
        return {"context_id": context_id, "exists": ctx is not None, "window_size": size,
                "items": len(self._window(rows, size)),
                "speakers": sorted({r.speaker for r in rows if r.speaker})}

    def _snapshot(self, context_id: str) -> tuple[Any, list[Any]]:
        """(context, items oldest first) from the current Redis copy, else from SQL; (None, []) if absent."""
        found = self.cache.lookup(context_id)
        if found.hit:
            return _thaw(found.value)
        with self.sql.session() as session:
            ctx = self._context(session, context_id, create=False)
            frozen = _freeze(ctx, self._rows(session, context_id) if ctx is not None else [])
        self.cache.fill(context_id, found, frozen)
        return _thaw(frozen)

    # ------------------------------------------------------------------ internals
    def _context(self, session: Session, context_id: str, create: bool) -> Context | None:
        ctx = session.get(Context, context_id)
        if ctx is None and create:
            ctx = Context(context_id=context_id, window_size=self.s.initial_size, meta={})
            session.add(ctx)
            session.flush()
        return ctx

    @staticmethod
    def _rows(session: Session, context_id: str) -> list[ContextItem]:
        """Every item of a context, oldest first."""
        query = select(ContextItem).where(ContextItem.context_id == context_id) \
            .order_by(ContextItem.timestamp, ContextItem.id)
        return list(session.scalars(query))

    @staticmethod
    def _window(rows: list[ContextItem], size: int) -> list[ContextItem]:
        return rows[-size:] if size > 0 else []

    def _speaker_view(self, ctx: Context, rows: list[ContextItem], speaker: str) -> list[ContextItem]:
        mark = float(ctx.meta.get("speaker_cleared_at", {}).get(speaker, float("-inf")))
        mine = [r for r in rows if r.speaker == speaker and r.timestamp > mark]
        return mine[-self.s.max_size:]

    @staticmethod
    def _has_view(ctx: Context, rows: list[ContextItem], speaker: str) -> bool:
        return speaker in ctx.meta.get("speaker_cleared_at", {}) or any(r.speaker == speaker for r in rows)

    def _adapted_size(self, size: int, window: list[ContextItem]) -> int:
        average = sum(r.importance for r in window) / len(window) if window else 0.5
        if average > self.s.grow_above:
            return min(self.s.max_size, size + 2)
        if average < self.s.shrink_below:
            return max(self.s.min_size, size - 1)
        return size

    def _collect(self, session: Session, ctx: Context, rows: list[ContextItem]) -> None:
        """Delete items that neither the general window nor their speaker's view holds."""
        keep = {r.id for r in self._window(rows, ctx.window_size)}
        for speaker in {r.speaker for r in rows if r.speaker}:
            keep.update(r.id for r in self._speaker_view(ctx, rows, speaker))
        for row in rows:
            if row.id not in keep:
                session.delete(row)


_ITEM_FIELDS = ("id", "text", "speaker", "meta", "importance", "timestamp")


def _freeze(ctx: Context | None, rows: list[ContextItem]) -> dict[str, Any]:
    if ctx is None:
        return {"absent": True}
    return {"window_size": ctx.window_size, "meta": dict(ctx.meta or {}),
            "items": [[getattr(r, f) for f in _ITEM_FIELDS] for r in rows]}


def _thaw(frozen: dict[str, Any]) -> tuple[Any, list[Any]]:
    if frozen.get("absent"):
        return None, []
    ctx = SimpleNamespace(window_size=frozen["window_size"], meta=frozen["meta"])
    return ctx, [SimpleNamespace(**dict(zip(_ITEM_FIELDS, item))) for item in frozen["items"]]
