"""ProactiveContextMonitor: legacy-protocol.md §2.5 (7119/8119), plus the context-watching background task.

Legacy port (JSON, flat fields; replies exactly as the legacy agent):
  add_context{context}           -> {status:"success", message:"Context added"}
                                    (appended as {timestamp: iso, data: context}; newest 100 kept)
  get_context_history{limit=10}  -> {status:"success", history:[{timestamp, data}], count, total}  (oldest first)
  clear_context_history          -> {status:"success", message:"Context history cleared"}
  health_check                   -> base health + {status:"ok", service:"ProactiveContextMonitor", uptime,
                                    context_history_length, request_count}
  errors -> {status:"error", message}: "Missing context data", "Context too large", "Unknown action: X"
Legacy health port: the same health reply for any message.

Native (agent "ProactiveContextMonitor"):
  add_context{context}            -> {timestamp, total}
  get_context_history{limit?}     -> {history, count, total}
  clear_context_history           -> {cleared: n}
  status                          -> the task: {running, method, topic, published, suppressed, dropped, pending}

Background task (agents/memory_hub/context_monitor.py): publishes ``context.added``, ``context.changed`` and
``context.suggestion`` on the hub's PUB socket, rate-limited per topic. The hub hands it every event it
publishes through ``observe(topic, fields)`` (``handler.observe``); it also polls SQL as a fallback.
History persistence: SQL table ``proactive_context_history`` (the legacy list was lost on restart).
"""
from __future__ import annotations

import json
import threading
import time
from collections import deque
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, select

from agents.memory_hub.context_monitor import ContextMonitor, ContextMonitorSettings
from bus.errors import BadRequest, HubError, TooLarge
from bus.events import EventPublisher, NullPublisher
from bus.handler import CallContext, Handler, action, base_legacy_health
from bus.legacy import LegacyCall, LegacyTable, LegacyVocabulary
from bus.log import get_logger
from schemas.memory_hub import proactive_context_monitor as schema

log = get_logger("memory_hub.proactive_context_monitor")

class SqlHistory:
    """The legacy context history in SQL: ``[{timestamp, data}]``, newest ``cap`` rows kept."""

    def __init__(self, sql: Any, cap: int):
        self.sql = sql
        self.cap = cap

    def add(self, data: Any) -> dict[str, Any]:
        from agents.memory_hub.stores.sql_models import ProactiveContextEntry as Entry

        entry = {"timestamp": datetime.now().isoformat(), "data": data}
        with self.sql.transaction() as session:
            session.add(Entry(timestamp=entry["timestamp"], data=data))
            session.flush()
            stale = select(Entry.id).order_by(Entry.id.desc()).offset(self.cap)
            session.execute(delete(Entry).where(Entry.id.in_(stale.scalar_subquery())))
        return entry

    def entries(self) -> list[dict[str, Any]]:
        from agents.memory_hub.stores.sql_models import ProactiveContextEntry as Entry

        query = select(Entry.timestamp, Entry.data).order_by(Entry.id.desc()).limit(self.cap)
        with self.sql.session() as session:
            rows = list(session.execute(query))
        return [{"timestamp": ts, "data": data} for ts, data in reversed(rows)]

    def count(self) -> int:
        from agents.memory_hub.stores.sql_models import ProactiveContextEntry as Entry

        with self.sql.session() as session:
            return min(self.cap, int(session.execute(select(func.count()).select_from(Entry)).scalar_one()))

    def clear(self) -> int:
        from agents.memory_hub.stores.sql_models import ProactiveContextEntry as Entry

        with self.sql.transaction() as session:
            return int(session.execute(delete(Entry)).rowcount or 0)


class MemoryHistory:
    """The same interface in memory (no SQL store configured)."""

    def __init__(self, cap: int):
        self._items: deque[dict[str, Any]] = deque(maxlen=cap)
        self._lock = threading.Lock()

    def add(self, data: Any) -> dict[str, Any]:
        entry = {"timestamp": datetime.now().isoformat(), "data": data}
        with self._lock:
            self._items.append(entry)
        return entry

    def entries(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._items)

    def count(self) -> int:
        return len(self._items)

    def clear(self) -> int:
        with self._lock:
            n = len(self._items)
            self._items.clear()
        return n


class ProactiveContextMonitor(Handler):
    name = "ProactiveContextMonitor"
    legacy_ports = (7119,)
    legacy_health_ports = (8119,)
    legacy_vocabulary = LegacyVocabulary(missing_action="", null_action="",
                                         not_an_object="'{type}' object has no attribute 'get'")

    def __init__(self, section: ContextMonitorSettings, events: EventPublisher | NullPublisher, sql: Any = None,
                 redis: Any = None, search: Any = None):
        """Hub events reach it through ``observe`` (hub.py adds it to the event observers)."""
        self.settings = section
        cap = section.history_max
        self.history = SqlHistory(sql, cap) if sql is not None else MemoryHistory(cap)
        self.monitor = ContextMonitor(section, self.history, events, sql=sql, redis=redis, search=search)
        self.started_at = time.time()
        self.request_count = 0
        self._count_lock = threading.Lock()

    # ------------------------------------------------------------------ hub wiring
    def observe(self, topic: str, fields: dict[str, Any] | None) -> None:
        """Hand one hub event to the monitor (cheap, never blocks)."""
        self.monitor.observe(topic, fields)

    def start(self) -> None:
        self.monitor.start()

    def stop(self) -> None:
        self.monitor.stop()

    # ------------------------------------------------------------------ domain
    def add_context(self, context: Any) -> dict[str, Any]:
        if not context:
            raise BadRequest("Missing context data", details={"field": "context"})
        size = len(json.dumps(context, default=str))
        if size > self.settings.max_context_bytes:
            raise TooLarge("Context too large", details={"bytes": size})
        return self.monitor.add_context(context)

    # ------------------------------------------------------------------ native
    @action(schema.ADD_CONTEXT, name="add_context")
    def add_context_action(self, args: dict, ctx: CallContext) -> dict:
        """Append to the history and analyse it."""
        entry = self.add_context(args["context"])
        return {"timestamp": entry["timestamp"], "total": self.history.count()}

    @action(schema.GET_CONTEXT_HISTORY, name="get_context_history")
    def get_context_history_action(self, args: dict, ctx: CallContext) -> dict:
        """The newest entries, oldest first."""
        entries = self.history.entries()
        history = entries[-args["limit"]:]
        return {"history": history, "count": len(history), "total": len(entries)}

    @action(schema.CLEAR_CONTEXT_HISTORY, name="clear_context_history")
    def clear_context_history_action(self, args: dict, ctx: CallContext) -> dict:
        """Forget the history."""
        return {"cleared": self.history.clear()}

    @action(schema.STATUS, inline=True)
    def status(self, args: dict, ctx: CallContext) -> dict:
        """The background task's state and event counters."""
        return self.monitor.stats()

    # ------------------------------------------------------------------ legacy
    def handle_legacy(self, request: Any, port: int) -> dict:
        with self._count_lock:
            self.request_count += 1                    # every legacy request counts (health reply)
        return super().handle_legacy(request, port)

    def legacy_table(self, call: LegacyCall) -> LegacyTable:
        return LegacyTable({"add_context": self._legacy_add, "get_context_history": self._legacy_history,
                            "clear_context_history": self._legacy_clear,
                            "health_check": lambda _r: self.legacy_health(0)})

    def _legacy_add(self, request: dict) -> dict:
        self.add_context(request.get("context"))
        return {"status": "success", "message": "Context added"}

    def _legacy_history(self, request: dict) -> dict:
        try:
            limit = int(request.get("limit", 10))
        except (ValueError, TypeError):
            limit = 10
        entries = self.history.entries()
        history = entries[-limit:] if entries else []      # legacy slicing, limit 0 included
        return {"status": "success", "history": history, "count": len(history), "total": len(entries)}

    def _legacy_clear(self, request: dict) -> dict:
        self.history.clear()
        return {"status": "success", "message": "Context history cleared"}

    def legacy_health(self, port: int) -> dict:
        try:
            length = self.history.count()
        except HubError:
            length = 0
        return base_legacy_health(self.name, self.started_at, status="ok", service="ProactiveContextMonitor",
                                  uptime=time.time() - self.started_at, context_history_length=length,
                                  request_count=self.request_count)

    def health_checks(self) -> dict[str, tuple[bool, Any]]:
        stats = self.monitor.stats()
        return {"context_monitor": (stats["running"], {"method": stats["method"], "dropped": stats["dropped"]})}
