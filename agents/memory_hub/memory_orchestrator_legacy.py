"""The legacy MemoryOrchestratorService vocabulary over the memory domain (legacy-protocol.md §1.4).

Requests are ``{"action": A, "data": {...}}`` (fields read from ``data``). Served on MOS's port 7140 and on
MemoryClient's port 5713 (the requests MemoryClient used to forward to 7140). Replies, exactly as legacy:

  add_memory{MemoryEntry fields; tier "short", importance 1.0 by default}  -> {status:"success", memory_id}
  get_memory{memory_id}                         -> {status, memory}          (access_count + 1)
  get_children{parent_id, limit?, sort_field?, sort_order?}  -> {status, children, results (the same list)}
  add_relationship{source_id, target_id, relationship_type, strength=1.0}    -> {status}
  get_related{memory_id, relationship_type?}    -> {status, related_memories:[{relationship, memory}]}
  search_memory{query, memory_type?, parent_id?, limit=10}   -> {status, results, count}
  semantic_search{query, k=5, filters?}         -> {status, message, results}
  update_memory{memory_id, update_data}         -> {status}
  delete_memory{memory_id, cascade=false}       -> {status, message:"Memory X deleted successfully."}
  reinforce_memory{memory_id, reinforcement_factor=1.2}      -> {status, new_importance}
  create_context_group{name, description?}      -> {status, group_id}
  add_to_group{memory_id, group_id}             -> {status}
  get_memories_by_group{group_id}               -> {status, group_id, memories, count}
  batch_add_memories{memories}                  -> {status, message:"Added N memories", memory_ids}
  batch_get_memories{memory_ids}                -> {status, memories, count}
  create_session{user_id, session_type, created_by, metadata?}  -> {status, session_id}
Errors: ``{"status": "error", "message": ...}`` with the legacy messages ("memory_id is required.",
"Memory with ID X not found.", "Invalid memory format: ...", "No memories provided.", ...): a method raises
``LegacyError`` (bad input) or a ``HubError`` and the handler's ``bus.legacy.LegacyAdapter`` words the reply.
``data`` that is not an object -> "Invalid request format: data must be an object.".
Memories are checked here, once (``memory_records.memory_values``/``memory_batch``: the legacy MemoryEntry
defaults, tier "short" and importance 1.0 for add_memory), before ``Memories`` stores them.
"""
from __future__ import annotations

from functools import partial
from typing import Any
from collections.abc import Callable

from agents.memory_hub.memories import Memories
from agents.memory_hub.memory_records import entry_defaults, memory_batch, memory_ids, memory_values
from bus.errors import BadRequest, HubError
from bus.legacy import LegacyInputError, message_error
from schemas.memory_hub.memory_orchestrator_service import SORT_FIELDS

TEXT_FALLBACK = "Semantic search not fully implemented, falling back to text search"
HYBRID = "Semantic search results (vector + keyword ranking)"


class LegacyError(LegacyInputError):
    """A legacy error reply message (bad input)."""


def memory_format_error(exc: HubError) -> LegacyError | HubError:
    """A bad memory field as MOS worded it (clients of MOS passed its message through), else ``exc``."""
    if not exc.retryable and exc.details.get("field") in ("content", "metadata", "tags"):
        return LegacyError(f"Invalid memory format: {exc.message}")
    return exc


def _str(data: dict, name: str, required_message: str | None = None) -> str | None:
    value = data.get(name)
    if value is None or value == "":
        if required_message:
            raise LegacyError(required_message)
        return None
    if not isinstance(value, str):
        raise LegacyError(f"{name} must be a string.")
    return value


def _num(data: dict, name: str, default: float) -> float:
    value = data.get(name, default)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise LegacyError(f"{name} must be a number.")
    return float(value)


def _int(data: dict, name: str, default: int | None) -> int | None:
    value = data.get(name, default)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise LegacyError(f"{name} must be a positive integer.")
    return value


class LegacyMemoryApi:
    """The MOS legacy actions: ``actions`` over ``data``, ``requests`` over the whole request (a table's)."""

    def __init__(self, memories: Memories, create_session: Callable[..., dict] | None = None,
                 on_outcome: Callable[[bool], None] | None = None):
        self.memories = memories
        self.create_session = create_session
        self.on_outcome = on_outcome       # called with False when a store failed (Unavailable/Busy), else True
        self.actions: dict[str, Callable[[dict], dict]] = {
            "add_memory": self.add_memory, "get_memory": self.get_memory, "get_children": self.get_children,
            "add_relationship": self.add_relationship, "get_related": self.get_related,
            "search_memory": self.search_memory, "semantic_search": self.semantic_search,
            "update_memory": self.update_memory, "delete_memory": self.delete_memory,
            "reinforce_memory": self.reinforce_memory, "create_context_group": self.create_context_group,
            "add_to_group": self.add_to_group, "get_memories_by_group": self.get_memories_by_group,
            "batch_add_memories": self.batch_add_memories, "batch_get_memories": self.batch_get_memories,
            "create_session": self.create_session_action,
        }
        self.requests = {name: partial(self._call, fn) for name, fn in self.actions.items()}

    def _call(self, fn: Callable[[dict], dict], request: dict[str, Any]) -> dict[str, Any]:
        data = request.get("data", {})
        if data is None:
            data = {}
        if not isinstance(data, dict):
            return message_error("Invalid request format: data must be an object.")
        store_ok = True
        try:
            return fn(data)
        except HubError as exc:
            store_ok = not exc.retryable
            raise
        finally:
            if self.on_outcome is not None:
                self.on_outcome(store_ok)

    # ------------------------------------------------------------------ actions
    def add_memory(self, data: dict) -> dict:
        try:
            values = memory_values(data, self.memories.limits, defaults=entry_defaults(importance=1.0))
            memory_id = self.memories.add(values, replace=True)
        except HubError as exc:
            if exc.retryable:
                raise
            return message_error(f"Invalid memory format: {exc.message}")
        return {"status": "success", "memory_id": memory_id}

    def get_memory(self, data: dict) -> dict:
        memory_id = _str(data, "memory_id", "memory_id is required.")
        return {"status": "success", "memory": self.memories.get(memory_id)}

    def get_children(self, data: dict) -> dict:
        parent_id = _str(data, "parent_id", "parent_id is required.")
        limit = _int(data, "limit", None)
        sort_field = _str(data, "sort_field") or "created_at"
        sort_order = _str(data, "sort_order") or "asc"
        _check_sort(sort_field, sort_order)
        children = self.memories.children(parent_id, limit, sort_field, sort_order)
        # GoalManager and MainPC's ContextManager read `results`; legacy MOS sent only `children`: both
        return {"status": "success", "children": children, "results": children}

    def add_relationship(self, data: dict) -> dict:
        names = ("source_id", "target_id", "relationship_type")
        if not all(data.get(n) for n in names):
            raise LegacyError("source_id, target_id, and relationship_type are required.")
        if not all(isinstance(data[n], str) for n in names):
            raise LegacyError("source_id, target_id, and relationship_type must be strings.")
        if len(data["relationship_type"]) > 64:
            raise LegacyError("relationship_type is longer than 64 characters.")
        self.memories.relate(data["source_id"], data["target_id"], data["relationship_type"],
                             _num(data, "strength", 1.0))
        return {"status": "success"}

    def get_related(self, data: dict) -> dict:
        memory_id = _str(data, "memory_id", "memory_id is required.")
        related = self.memories.related(memory_id, _str(data, "relationship_type"))
        return {"status": "success", "related_memories": related}

    def search_memory(self, data: dict) -> dict:
        query = _str(data, "query", "query is required.")
        filters = {k: v for k in ("memory_type", "parent_id") if (v := _str(data, k)) is not None}
        results = self.memories.text_search(query, _int(data, "limit", 10), filters)
        return {"status": "success", "results": results, "count": len(results)}

    def semantic_search(self, data: dict) -> dict:
        query = _str(data, "query", "query is required.")
        filters = data.get("filters")
        if filters is not None and not isinstance(filters, dict):
            raise LegacyError("filters must be an object.")
        results, how = self.memories.semantic_search(query, _int(data, "k", 5), filters or None)
        return {"status": "success", "message": TEXT_FALLBACK if how == "text" else HYBRID, "results": results}

    def update_memory(self, data: dict) -> dict:
        memory_id = _str(data, "memory_id", "memory_id is required.")
        update_data = data.get("update_data", {})
        if not isinstance(update_data, dict):
            raise LegacyError("update_data must be an object.")
        self.memories.update(memory_id, memory_values(update_data, self.memories.limits, partial=True))
        return {"status": "success"}

    def delete_memory(self, data: dict) -> dict:
        memory_id = _str(data, "memory_id", "memory_id is required.")
        cascade = data.get("cascade", False)
        if not isinstance(cascade, bool):
            raise LegacyError("cascade must be a boolean.")
        self.memories.delete(memory_id, cascade)
        return {"status": "success", "message": f"Memory {memory_id} deleted successfully."}

    def reinforce_memory(self, data: dict) -> dict:
        memory_id = _str(data, "memory_id", "memory_id is required.")
        factor = _num(data, "reinforcement_factor", 1.2)
        if factor < 0:
            raise LegacyError("reinforcement_factor must not be negative.")
        return {"status": "success", "new_importance": self.memories.reinforce(memory_id, factor)}

    def create_context_group(self, data: dict) -> dict:
        name = _str(data, "name", "name is required.")
        if len(name) > 255:
            raise LegacyError("name is longer than 255 characters.")
        description = _str(data, "description")
        return {"status": "success", "group_id": self.memories.create_group(name, description)}

    def add_to_group(self, data: dict) -> dict:
        memory_id, group_id = data.get("memory_id"), data.get("group_id")
        if not memory_id or group_id in (None, ""):
            raise LegacyError("memory_id and group_id are required.")
        if not isinstance(memory_id, str):
            raise LegacyError("memory_id must be a string.")
        self.memories.add_to_group(memory_id, _group_id(group_id))
        return {"status": "success"}

    def get_memories_by_group(self, data: dict) -> dict:
        if data.get("group_id") in (None, ""):
            raise LegacyError("group_id is required.")
        group_id = _group_id(data["group_id"])
        memories = self.memories.group_memories(group_id)
        return {"status": "success", "group_id": group_id, "memories": memories, "count": len(memories)}

    def batch_add_memories(self, data: dict) -> dict:
        memories = data.get("memories")
        if not memories:
            raise LegacyError("No memories provided.")
        if not isinstance(memories, list):
            raise LegacyError("memories must be a list.")
        try:
            rows = memory_batch(memories, self.memories.limits, self.memories.settings.max_batch)
            ids = self.memories.add_many(rows)
        except HubError as exc:
            if exc.retryable:
                raise
            return message_error(f"Batch operation failed: {exc.message}")
        return {"status": "success", "message": f"Added {len(ids)} memories", "memory_ids": ids}

    def batch_get_memories(self, data: dict) -> dict:
        ids = data.get("memory_ids")
        if not ids:
            raise LegacyError("No memory_ids provided.")
        if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
            raise LegacyError("memory_ids must be a list of strings.")
        memories = self.memories.get_many(memory_ids(ids, self.memories.settings.max_batch))
        return {"status": "success", "memories": memories, "count": len(memories)}

    def create_session_action(self, data: dict) -> dict:
        if self.create_session is None:
            return message_error("Unknown action: create_session")
        metadata = data.get("metadata") or {}
        if not isinstance(metadata, dict):
            raise LegacyError("metadata must be an object.")
        session = self.create_session(user_id=_str(data, "user_id") or "default",
                                      session_type=_str(data, "session_type") or "conversation",
                                      metadata=metadata, created_by=_str(data, "created_by"))
        return {"status": "success", "session_id": session["session_id"]}


def _check_sort(sort_field: str, sort_order: str) -> None:
    """As the native schema's choices, in MOS's words (a ``BadRequest``, counted as legacy MOS's errors were)."""
    if sort_field not in SORT_FIELDS:
        raise BadRequest(f"sort_field must be one of {', '.join(SORT_FIELDS)}", details={"field": "sort_field"})
    if sort_order not in ("asc", "desc"):
        raise BadRequest("sort_order must be asc or desc", details={"field": "sort_order"})


def _group_id(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise LegacyError("group_id must be a string or an integer.")
    return str(value)
