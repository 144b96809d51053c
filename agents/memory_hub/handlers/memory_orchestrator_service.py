"""MemoryOrchestratorService: legacy-protocol.md §1.4 (7140; health 7141 in code, 8140 in YAML: both bound).

Legacy port 7140 (JSON ``{"action": A, "data": {...}}``): every action of the legacy table, replies exactly as
legacy (``status`` "success"/"error", errors under ``message``; see ``memory_orchestrator_legacy.py`` for
the full list), plus ``create_session`` (MemoryClient sent it; legacy MOS never had it). Unknown ->
``{"status":"error","message":"Unknown action: A"}``. ``ping``/``health`` and any message on the health ports
-> BaseAgent health + ``{status:"ok"|"degraded", db_connected, redis_connected, error_bus_ready}`` (degraded
when SQL or Redis is down or there is no event publisher). ``health_check`` on 7140 -> the same reply with
``status`` "success" instead of "ok" (SystemHealthManager sends ``{"action":"health_check","data":{}}`` there and
requires "success"; "degraded" stays "degraded"), ``health`` keeping "ok"|"degraded".

Native (agent "MemoryOrchestratorService"), args validated by ``schemas/memory_hub/memory_orchestrator_service``:
  add_memory{content, memory_type?, memory_tier?, importance?=0.5, metadata?, tags?, parent_id?, memory_id?,
             expires_at?, namespace?, session_id?, dedupe?=false} -> {memory_id}   (conflict: id exists)
      dedupe: a memory of the same namespace with the same content (content_hash) is returned instead of
      writing a new one: {memory_id, duplicate: true, memory}; else {memory_id, duplicate: false}.
      The legacy add_memory on 7140 always writes a new row, as legacy did.
  get_memory{memory_id, touch?=true}                          -> memory        (not_found)
  get_children{parent_id, limit?, sort_field?, sort_order?}   -> {children}
  add_relationship{source_id, target_id, relationship_type, strength?}
      -> {source_id, target_id, relationship_type, strength}
  get_related{memory_id, relationship_type?}                  -> {related_memories}
  search_memory{query, memory_type?, parent_id?, filters?, limit?}     -> {results, count}
  semantic_search{query, k?, filters?}                        -> {results, mode: "hybrid"|"text"}
      ("text": the hub runs without search; while the model loads it waits until the request's deadline,
      then `unavailable`, retryable with retry_after_ms)
  update_memory{memory_id, update_data}                       -> memory
  delete_memory{memory_id, cascade?}                          -> {deleted: [ids]}
  reinforce_memory{memory_id, reinforcement_factor?}          -> {memory_id, new_importance}
  create_context_group{name, description?}                    -> {group_id}
  add_to_group{memory_id, group_id}                           -> {memory_id, group_id, added}
  get_memories_by_group{group_id, limit?}                     -> {group_id, memories, count}
  batch_add_memories{memories}                                -> {memory_ids}  (all or none)
  batch_get_memories{memory_ids}                              -> {memories, count, missing}
  create_session{user_id?, session_type?, created_by?, metadata?}  -> session
  run_lifecycle{now?}                                         -> pass counts
A native ``add_memory`` is checked by its schema and ``memory_records.within_limits`` (sizes);
``update_data`` and batch items, which no schema describes, by ``memory_records.memory_values``.
Memory object: memory_id, content, memory_type, memory_tier, importance, access_count, last_accessed_at,
created_at, expires_at, metadata, tags, relationships, parent_id, namespace, session_id, updated_at.
Every write publishes ``memory.added`` {memory_id, memory_type, namespace, op}. Oversized content ->
``too_large`` (legacy: error message). The lifecycle task runs every ``memory_orchestrator.lifecycle_interval_s``.
"""
from __future__ import annotations

import threading
import time
from typing import Any

from agents.memory_hub.lifecycle import Lifecycle, LifecycleSettings
from agents.memory_hub.memories import Memories
from agents.memory_hub.memory_orchestrator_legacy import LegacyMemoryApi
from agents.memory_hub.memory_records import memory_batch, memory_ids, memory_values, within_limits
from agents.memory_hub.sessions import Sessions
from bus.events import EventPublisher, NullPublisher
from bus.handler import CallContext, Handler, action, base_legacy_health
from bus.legacy import LegacyCall, LegacyTable, LegacyVocabulary
from schemas.memory_hub import memory_orchestrator_service as schema

class StoreProbe:
    """(sql_ok, redis_ok) for health replies. The first call probes; later calls answer the last result at once
    and, when it is older than ``every_s``, refresh it on a background thread (health ports are answered on the
    router thread, which must never wait for a stalled Redis)."""

    def __init__(self, sql: Any, redis: Any, every_s: float = 2.0):
        self.sql, self.redis = sql, redis
        self.every_s = every_s
        self._at: float | None = None
        self._value = (False, False)
        self._lock = threading.Lock()
        self._refreshing = False

    def __call__(self) -> tuple[bool, bool]:
        if self._at is None:
            self._refresh()
        elif time.monotonic() - self._at >= self.every_s:
            with self._lock:
                start, self._refreshing = not self._refreshing, True
            if start:
                threading.Thread(target=self._refresh, name="store-probe", daemon=True).start()
        return self._value

    def _refresh(self) -> None:
        try:
            sql, redis = self.sql, self.redis
            self._value = (bool(sql is not None and sql.ping()), bool(redis is not None and redis.available()))
            self._at = time.monotonic()
        finally:
            with self._lock:
                self._refreshing = False


class MemoryOrchestratorService(Handler):
    name = "MemoryOrchestratorService"
    legacy_ports = (7140,)
    legacy_health_ports = (7141, 8140)
    legacy_vocabulary = LegacyVocabulary()

    def __init__(self, lifecycle: LifecycleSettings, memories: Memories, sessions: Sessions,
                 events: EventPublisher | NullPublisher, redis: Any = None):
        self.memories = memories
        self.sessions = sessions
        self.events = events
        self.lifecycle = Lifecycle(memories, lifecycle)
        self.legacy = LegacyMemoryApi(memories, sessions.create)
        self.probe = StoreProbe(memories.sql, redis)
        self.started_at = time.time()

    # ------------------------------------------------------------------ legacy
    def legacy_table(self, call: LegacyCall) -> LegacyTable:
        def health(_request: dict) -> dict:
            return self.legacy_health(call.port)

        return LegacyTable({**self.legacy.requests, "ping": health, "health": health,
                            "health_check": lambda _r: self.main_port_health_check(call.port)})

    def legacy_health(self, port: int) -> dict:
        db, redis = self.probe()
        bus_ready = isinstance(self.events, EventPublisher)
        return base_legacy_health(self.name, self.started_at, status="ok" if db and redis and bus_ready else "degraded",
                                  db_connected=db, redis_connected=redis, error_bus_ready=bus_ready)

    def main_port_health_check(self, port: int) -> dict:
        """SystemHealthManager's probe: the health reply with "success" for a healthy MOS (README, repairs)."""
        reply = self.legacy_health(port)
        return {**reply, "status": "success" if reply["status"] == "ok" else reply["status"],
                "health": reply["status"]}

    def health_checks(self) -> dict[str, tuple[bool, Any]]:
        last = self.lifecycle.last_run
        return {"memory_lifecycle": (self.lifecycle.alive or not self.lifecycle.settings.lifecycle_enabled,
                                     {"last_run": last and last.get("finished_at"),
                                      "interval_s": self.lifecycle.settings.lifecycle_interval_s})}

    def start(self) -> None:
        self.lifecycle.start()

    def stop(self) -> None:
        self.lifecycle.stop()

    # ------------------------------------------------------------------ native
    @action(schema.ADD_MEMORY)
    def add_memory(self, args: dict, ctx: CallContext) -> dict:
        """Store one memory; returns its id (with dedupe: the existing one of the same content, if any)."""
        data = within_limits({k: v for k, v in args.items() if k != "dedupe"}, self.memories.limits)
        if not args["dedupe"]:
            return {"memory_id": self.memories.add(data)}
        existing, memory_id = self.memories.add_unique(data)
        if existing is None:
            return {"memory_id": memory_id, "duplicate": False}
        return {"memory_id": memory_id, "duplicate": True, "memory": existing}

    @action(schema.GET_MEMORY)
    def get_memory(self, args: dict, ctx: CallContext) -> dict:
        """One memory (counts an access unless touch is false)."""
        return self.memories.get(args["memory_id"], touch=args["touch"])

    @action(schema.GET_CHILDREN)
    def get_children(self, args: dict, ctx: CallContext) -> dict:
        """Children of a memory, sorted."""
        return {"children": self.memories.children(args["parent_id"], args["limit"], args["sort_field"],
                                                   args["sort_order"])}

    @action(schema.ADD_RELATIONSHIP)
    def add_relationship(self, args: dict, ctx: CallContext) -> dict:
        """Create (or re-weight) a typed relationship."""
        self.memories.relate(args["source_id"], args["target_id"], args["relationship_type"], args["strength"])
        return dict(args)

    @action(schema.GET_RELATED)
    def get_related(self, args: dict, ctx: CallContext) -> dict:
        """Targets of a memory's relationships."""
        return {"related_memories": self.memories.related(args["memory_id"], args["relationship_type"])}

    @action(schema.SEARCH_MEMORY)
    def search_memory(self, args: dict, ctx: CallContext) -> dict:
        """Text search, most important first."""
        filters = dict(args["filters"] or {})
        for key in ("memory_type", "parent_id"):
            if args[key] is not None:
                filters[key] = args[key]
        results = self.memories.text_search(args["query"], args["limit"], filters or None)
        return {"results": results, "count": len(results)}

    @action(schema.SEMANTIC_SEARCH)
    def semantic_search(self, args: dict, ctx: CallContext) -> dict:
        """Semantic search (text search without a search engine)."""
        results, how = self.memories.semantic_search(args["query"], args["k"], args["filters"], ctx.deadline,
                                                     strict=True)
        return {"results": results, "mode": how}

    @action(schema.UPDATE_MEMORY)
    def update_memory(self, args: dict, ctx: CallContext) -> dict:
        """Set fields of a memory; returns it."""
        values = memory_values(args["update_data"], self.memories.limits, partial=True)
        return self.memories.update(args["memory_id"], values)

    @action(schema.DELETE_MEMORY)
    def delete_memory(self, args: dict, ctx: CallContext) -> dict:
        """Delete a memory (and its descendants with cascade)."""
        return {"deleted": self.memories.delete(args["memory_id"], args["cascade"])}

    @action(schema.REINFORCE_MEMORY)
    def reinforce_memory(self, args: dict, ctx: CallContext) -> dict:
        """importance = min(importance * factor, 1)."""
        new = self.memories.reinforce(args["memory_id"], args["reinforcement_factor"])
        return {"memory_id": args["memory_id"], "new_importance": new}

    @action(schema.CREATE_CONTEXT_GROUP)
    def create_context_group(self, args: dict, ctx: CallContext) -> dict:
        """Create a context group."""
        return {"group_id": self.memories.create_group(args["name"], args["description"])}

    @action(schema.ADD_TO_GROUP)
    def add_to_group(self, args: dict, ctx: CallContext) -> dict:
        """Put a memory in a group."""
        group_id = str(args["group_id"])
        added = self.memories.add_to_group(args["memory_id"], group_id)
        return {"memory_id": args["memory_id"], "group_id": group_id, "added": added}

    @action(schema.GET_MEMORIES_BY_GROUP)
    def get_memories_by_group(self, args: dict, ctx: CallContext) -> dict:
        """The memories of a group, in the order they were added."""
        group_id = str(args["group_id"])
        memories = self.memories.group_memories(group_id, args["limit"])
        return {"group_id": group_id, "memories": memories, "count": len(memories)}

    @action(schema.BATCH_ADD_MEMORIES)
    def batch_add_memories(self, args: dict, ctx: CallContext) -> dict:
        """Add many memories in one transaction (all or none)."""
        rows = memory_batch(args["memories"], self.memories.limits, self.memories.settings.max_batch)
        return {"memory_ids": self.memories.add_many(rows)}

    @action(schema.BATCH_GET_MEMORIES)
    def batch_get_memories(self, args: dict, ctx: CallContext) -> dict:
        """Many memories at once."""
        ids = memory_ids(args["memory_ids"], self.memories.settings.max_batch)
        memories = self.memories.get_many(ids)
        found = {m["memory_id"] for m in memories}
        missing = [m for m in ids if m not in found]
        return {"memories": memories, "count": len(memories), "missing": missing}

    @action(schema.CREATE_SESSION)
    def create_session(self, args: dict, ctx: CallContext) -> dict:
        """Create a session (as SessionMemoryAgent.create_session)."""
        return self.sessions.create(args["user_id"], args["session_type"], args["metadata"], args["created_by"])

    @action(schema.RUN_LIFECYCLE)
    def run_lifecycle(self, args: dict, ctx: CallContext) -> dict:
        """Run one decay/promotion/consolidation pass now; returns its counts."""
        return self.lifecycle.run_once(args["now"])
