"""ContextManager: legacy-protocol.md §2.2 (7111; health 8111 from YAML; the code's 7112 is ExperienceTracker's).

Legacy port (JSON, flat fields; the intended ``ContextManagerAgent.handle_request`` protocol). Legacy requests
carry no context id: they use ``context_manager.legacy_context_id`` ("default"; a ``context_id`` field is
honoured if present).
  add_to_context{text, speaker?, metadata?} -> {status:"success", message:"Added to context"}
  get_context{speaker?, max_items?}         -> {status:"success", context:[{text, speaker, metadata, importance,
                                               timestamp}]}  sorted by (importance, timestamp) descending
  get_context_text{speaker?, max_items?}    -> {status:"success", context_text}   ("[speaker]: text" lines)
  clear_context{speaker?}                   -> {status:"success", message:"Context cleared"}
  prune_context                             -> {status:"success", message:"Context pruned"}
  ping | health | health_check              -> the health reply below
  errors -> {status:"error", message}: "Missing text parameter", "Invalid <field> parameter", "Invalid request
            format", "Unknown action: X", "database is not available".
Health (legacy health port, any message; and the health actions above):
  {status:"ok", service:"ContextManager", initialization_status:"complete", port:7111, health_port:8111, timestamp}

Native (agent "ContextManager"; the window logic is agents/memory_hub/context_window.py):
  add{context_id="default", text, speaker?, metadata?, importance?} -> {item_id, text, speaker, metadata,
      importance, timestamp, context_id, window_size}; publishes ``context.added`` with the item fields
  get_context{context_id, speaker?, max_items?}      -> {context_id, window_size, items:[item + item_id]}
  get_context_text{context_id, speaker?, max_items?} -> {context_id, context_text}
  clear_context{context_id, speaker?}                -> {context_id, cleared}
  prune_context{context_id}                          -> {context_id, pruned}
  context_info{context_id}                           -> {context_id, exists, window_size, items, speakers}
  Routes: GET /context/{context_id} (get_context; query speaker, max_items), POST (add), DELETE (clear_context).
"""
from __future__ import annotations

import time
from datetime import datetime
from typing import Any

from agents.memory_hub.context_window import ContextWindowSettings, ContextWindows
from bus.errors import BadRequest, Unavailable
from bus.events import EventPublisher, NullPublisher
from bus.handler import CallContext, Handler, Route, action
from bus.legacy import LegacyCall, LegacyTable, LegacyVocabulary
from schemas.base import Schema
from schemas.memory_hub import context_manager as schema

EVENT_TEXT_CHARS = 1000


class ContextManager(Handler):
    name = "ContextManager"
    legacy_ports = (7111,)
    legacy_health_ports = (8111,)
    legacy_vocabulary = LegacyVocabulary()
    routes = (Route("GET", "/context/{context_id}", "context_get"),
              Route("POST", "/context/{context_id}", "context_add"),
              Route("DELETE", "/context/{context_id}", "context_clear"))

    def __init__(self, section: ContextWindowSettings, events: EventPublisher | NullPublisher, sql: Any = None,
                 redis: Any = None):
        self.section = section
        self.events = events
        self.windows = ContextWindows(sql, section, redis) if sql is not None else None
        self._started_at = time.time()

    # ------------------------------------------------------------------ domain
    def _windows(self) -> ContextWindows:
        if self.windows is None:
            raise Unavailable("database is not available")
        return self.windows

    def add_item(self, context_id: str, text: str, speaker: str | None, metadata: dict | None,
                 importance: float | None = None) -> dict[str, Any]:
        item = self._windows().add(context_id, text, speaker, metadata, importance)
        event = {k: item[k] for k in ("context_id", "item_id", "speaker", "importance", "timestamp", "metadata")}
        event["text"] = item["text"][:EVENT_TEXT_CHARS]
        self.events.publish("context.added", event)
        return item

    # ------------------------------------------------------------------ native
    @action(schema.ADD)
    def add(self, args: dict, ctx: CallContext) -> dict:
        """Add an item to a context window."""
        return self.add_item(args["context_id"], args["text"], args["speaker"], args["metadata"], args["importance"])

    @action(schema.GET)
    def get_context(self, args: dict, ctx: CallContext) -> dict:
        """Items of the speaker's view or of the general window, most important first."""
        return self._items(args["context_id"], args["speaker"], args["max_items"])

    @action(schema.GET_TEXT)
    def get_context_text(self, args: dict, ctx: CallContext) -> dict:
        """The items as '[speaker]: text' lines."""
        text = self._windows().text(args["context_id"], args["speaker"], args["max_items"])
        return {"context_id": args["context_id"], "context_text": text}

    @action(schema.CLEAR)
    def clear_context(self, args: dict, ctx: CallContext) -> dict:
        """Empty a speaker's view, or the whole context."""
        return {"context_id": args["context_id"], "cleared": self._windows().clear(args["context_id"], args["speaker"])}

    @action(schema.PRUNE)
    def prune_context(self, args: dict, ctx: CallContext) -> dict:
        """Delete low-importance items of a full window."""
        return {"context_id": args["context_id"], "pruned": self._windows().prune(args["context_id"])}

    @action(schema.INFO)
    def context_info(self, args: dict, ctx: CallContext) -> dict:
        """Window size, items and speakers of a context."""
        return self._windows().info(args["context_id"])

    @action(schema.ROUTE_GET)
    def context_get(self, args: dict, ctx: CallContext) -> dict:
        """GET /context/{context_id}."""
        return self._items(args["context_id"], args["speaker"], _max_items(args["max_items"]))

    @action(schema.ROUTE_ADD)
    def context_add(self, args: dict, ctx: CallContext) -> dict:
        """POST /context/{context_id}."""
        return self.add_item(args["context_id"], args["text"], args["speaker"], args["metadata"], args["importance"])

    @action(schema.ROUTE_CLEAR)
    def context_clear(self, args: dict, ctx: CallContext) -> dict:
        """DELETE /context/{context_id}."""
        return self.clear_context(args, ctx)

    def _items(self, context_id: str, speaker: str | None, max_items: int | None) -> dict:
        items = self._windows().get(context_id, speaker, max_items)
        return {"context_id": context_id, "window_size": self._windows().info(context_id)["window_size"],
                "items": items}

    # ------------------------------------------------------------------ legacy
    def legacy_table(self, call: LegacyCall) -> LegacyTable:
        def health(_request: dict) -> dict:
            return self._health(self.legacy_health_ports[0])

        return LegacyTable({
            "add_to_context": self._legacy_add,
            "get_context": self._legacy_get,
            "get_context_text": self._legacy_get_text,
            "clear_context": self._legacy_clear,
            "prune_context": self._legacy_prune,
            "ping": health, "health": health, "health_check": health,
        })

    def _legacy_args(self, request: dict, fields: Schema) -> dict:
        """Validate the legacy fields with the native schema; errors in the legacy words."""
        args = {k: request[k] for k in fields.fields if k in request and request[k] not in (None, "")}
        args.setdefault("context_id", self.section.legacy_context_id)
        if args.get("max_items") == 0 and not isinstance(args.get("max_items"), bool):
            args.pop("max_items")                            # legacy: a falsy max_items means "all"
        try:
            return fields.validate(args)
        except BadRequest as err:
            field = err.details.get("field", "request")
            if field == "text" and not request.get("text"):
                raise BadRequest("Missing text parameter") from err
            raise BadRequest(f"Invalid {field} parameter") from err

    def _legacy_add(self, req: dict) -> dict:
        args = self._legacy_args(req, LEGACY_ADD)
        self.add_item(args["context_id"], args["text"], args["speaker"], args["metadata"])
        return {"status": "success", "message": "Added to context"}

    def _legacy_get(self, req: dict) -> dict:
        args = self._legacy_args(req, schema.GET)
        items = self._windows().get(args["context_id"], args["speaker"], args["max_items"])
        return {"status": "success", "context": [{k: i[k] for k in LEGACY_ITEM_KEYS} for i in items]}

    def _legacy_get_text(self, req: dict) -> dict:
        args = self._legacy_args(req, schema.GET_TEXT)
        return {"status": "success",
                "context_text": self._windows().text(args["context_id"], args["speaker"], args["max_items"])}

    def _legacy_clear(self, req: dict) -> dict:
        args = self._legacy_args(req, schema.CLEAR)
        self._windows().clear(args["context_id"], args["speaker"])
        return {"status": "success", "message": "Context cleared"}

    def _legacy_prune(self, req: dict) -> dict:
        args = self._legacy_args(req, schema.PRUNE)
        self._windows().prune(args["context_id"])
        return {"status": "success", "message": "Context pruned"}

    # ------------------------------------------------------------------ health
    def legacy_health(self, port: int) -> dict:
        return self._health(port)

    def _health(self, health_port: int) -> dict:
        return {"status": "ok", "service": "ContextManager", "initialization_status": "complete",
                "port": self.legacy_ports[0], "health_port": health_port, "timestamp": datetime.now().isoformat()}


LEGACY_ITEM_KEYS = ("text", "timestamp", "speaker", "importance", "metadata")
LEGACY_ADD = Schema({k: v for k, v in schema.ADD.fields.items() if k != "importance"})


def _max_items(value: int | str | None) -> int | None:
    if value is None or isinstance(value, int):
        number = value
    elif value.strip().isdigit():
        number = int(value.strip())
    else:
        raise BadRequest("max_items must be an integer", details={"field": "max_items"})
    if number is not None and not 1 <= number <= 1000:
        raise BadRequest("max_items must be in 1..1000", details={"field": "max_items"})
    return number
