"""SessionMemoryAgent: legacy-protocol.md §1.2 (5574; health 6583 in code, 6574 in YAML: both bound).

The legacy agent's ``process_request`` was never called (BaseAgent dispatches ``handle_request``); the hub
serves that intended protocol, with flat fields (domain: ``agents/memory_hub/sessions.py``).

Legacy port 5574 (JSON):
  create_session{user_id="default", metadata={}, session_type="conversation"} -> {status:"success", session_id}
  add_interaction{session_id, role, content, metadata?}
      -> {status:"success", message:"Interaction added", interaction_id}
                                                             missing field -> "Missing required parameters"
  get_context{session_id, limit=20}     -> {status:"success", context:[{role, content}]}  (last `limit`, oldest first)
  delete_session{session_id}            -> {status:"success", message:"Session deleted"}
  search_interactions{query, session_id?, limit=10}        -> {status:"success", results:[memory...]}
  health_check                          -> {status:"success", agent:"SessionMemoryAgent", healthy:true}
  ping / health (and any message on the health ports)      -> BaseAgent health + {status:"HEALTHY", service,
                                                              uptime_seconds, request_count}
  errors -> {status:"error", message}: "Missing session_id", "Missing query", "Invalid request format",
            "Unknown action: X", "Memory with ID X not found.", ...

Native (agent "SessionMemoryAgent"):
  create_session{user_id?, session_type?, metadata?, created_by?, session_id?}  -> session
  get_session{session_id, context_limit?=20}   -> session + {ttl_s, context}
  put_session{session_id, metadata?, user_id?, session_type?}  -> session + {created}
  delete_session{session_id}                   -> {session_id, deleted:[memory ids]}
  add_interaction{session_id, role, content, metadata?}        -> {interaction_id, session_id}
  get_context{session_id, limit?}              -> {session_id, context}
  search_interactions{query, session_id?, limit?}              -> {results, count}
  expire_sessions{now?}                        -> {expired:[session ids]}
Session: session_id, user_id, session_type, created_by, metadata, created_at, last_active_at, expires_at,
expired, expired_at. Routes: GET/PUT/DELETE /session/{session_id}, POST /session/{session_id}/interaction,
GET /session/{session_id}/context.
Events: session.created on create, session.expired from the expiry task, memory.added for each interaction.
"""
from __future__ import annotations

import time
from datetime import datetime
from typing import Any

from agents.memory_hub.memory_orchestrator_legacy import LegacyError, memory_format_error
from agents.memory_hub.sessions import Sessions
from bus.errors import HubError
from bus.handler import CallContext, Handler, Route, action, base_legacy_health
from bus.legacy import LegacyCall, LegacyTable, LegacyVocabulary
from schemas.memory_hub import session_memory_agent as schema


def _field(request: dict, name: str, message: str) -> Any:
    value = request.get(name)
    if value is None or value == "":
        raise LegacyError(message)
    if not isinstance(value, str):
        raise LegacyError(f"{name} must be a string")
    return value


def _optional_str(request: dict, name: str, default: str | None) -> str | None:
    value = request.get(name, default)
    if value is None or value == "":
        return default
    if not isinstance(value, str):
        raise LegacyError(f"{name} must be a string")
    return value


def _limit(request: dict, default: int) -> int:
    value = request.get("limit", default)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 1000:
        raise LegacyError("limit must be an integer between 1 and 1000")
    return value


def _metadata(request: dict) -> dict:
    value = request.get("metadata") or {}
    if not isinstance(value, dict):
        raise LegacyError("metadata must be an object")
    return value


class SessionMemoryAgent(Handler):
    name = "SessionMemoryAgent"
    legacy_ports = (5574,)
    legacy_health_ports = (6583, 6574)
    legacy_vocabulary = LegacyVocabulary()
    routes = (
        Route("GET", "/session/{session_id}", "get_session"),
        Route("PUT", "/session/{session_id}", "put_session"),
        Route("DELETE", "/session/{session_id}", "delete_session"),
        Route("POST", "/session/{session_id}/interaction", "add_interaction"),
        Route("GET", "/session/{session_id}/context", "get_context"),
    )

    def __init__(self, sessions: Sessions):
        self.sessions = sessions
        self.started_at = time.time()

    # ------------------------------------------------------------------ legacy
    def legacy_table(self, call: LegacyCall) -> LegacyTable:
        def health(_request: dict) -> dict:
            return self.legacy_health(call.port)

        return LegacyTable({
            "create_session": self._legacy_create, "add_interaction": self._legacy_add,
            "get_context": self._legacy_context, "delete_session": self._legacy_delete,
            "search_interactions": self._legacy_search,
            "health_check": lambda _: {"status": "success", "agent": self.name, "healthy": True},
            "ping": health, "health": health,
        })

    def legacy_health(self, port: int) -> dict:
        return base_legacy_health(self.name, self.started_at, service=self.name,
                                  uptime_seconds=int(time.time() - self.started_at),
                                  request_count=self.legacy_request_count, status="HEALTHY")

    def _legacy_create(self, request: dict) -> dict:
        metadata = {**_metadata(request), "created_at": datetime.now().isoformat(), "agent": self.name}
        session = self.sessions.create(_optional_str(request, "user_id", "default"),
                                       _optional_str(request, "session_type", "conversation"), metadata,
                                       created_by=self.name)
        return {"status": "success", "session_id": session["session_id"]}

    def _legacy_add(self, request: dict) -> dict:
        if not all(request.get(k) for k in ("session_id", "role", "content")):
            raise LegacyError("Missing required parameters")
        for name in ("session_id", "role"):
            if not isinstance(request[name], str):
                raise LegacyError(f"{name} must be a string")
        try:
            interaction_id = self.sessions.add_interaction(request["session_id"], request["role"],
                                                           request["content"], _metadata(request))
        except HubError as exc:
            raise memory_format_error(exc) from None
        return {"status": "success", "message": "Interaction added", "interaction_id": interaction_id}

    def _legacy_context(self, request: dict) -> dict:
        session_id = _field(request, "session_id", "Missing session_id")
        return {"status": "success", "context": self.sessions.context(session_id, _limit(request, 20))}

    def _legacy_delete(self, request: dict) -> dict:
        self.sessions.delete(_field(request, "session_id", "Missing session_id"))
        return {"status": "success", "message": "Session deleted"}

    def _legacy_search(self, request: dict) -> dict:
        query = _field(request, "query", "Missing query")
        results = self.sessions.search(query, _optional_str(request, "session_id", None), _limit(request, 10))
        return {"status": "success", "results": results}

    # ------------------------------------------------------------------ lifecycle
    def health_checks(self) -> dict[str, tuple[bool, Any]]:
        enabled = self.sessions.settings.cleanup_enabled
        return {"session_expiry": (self.sessions.alive or not enabled,
                                   {"interval_s": self.sessions.settings.cleanup_interval_s,
                                    "timeout_s": self.sessions.timeout})}

    def start(self) -> None:
        self.sessions.start()

    def stop(self) -> None:
        self.sessions.stop()

    # ------------------------------------------------------------------ native
    @action(schema.CREATE_SESSION)
    def create_session(self, args: dict, ctx: CallContext) -> dict:
        """Create a session; publishes session.created."""
        return self.sessions.create(args["user_id"], args["session_type"], args["metadata"], args["created_by"],
                                    args["session_id"])

    @action(schema.GET_SESSION)
    def get_session(self, args: dict, ctx: CallContext) -> dict:
        """A session with its most recent interactions as `context`."""
        session = self.sessions.get(args["session_id"])
        limit = args["context_limit"]
        session["context"] = self.sessions.context(args["session_id"], limit) if limit else []
        return session

    @action(schema.PUT_SESSION)
    def put_session(self, args: dict, ctx: CallContext) -> dict:
        """Create the session if absent, else merge metadata."""
        session, created = self.sessions.update(args["session_id"], args["metadata"], args["user_id"],
                                                args["session_type"])
        return {**session, "created": created}

    @action(schema.DELETE_SESSION)
    def delete_session(self, args: dict, ctx: CallContext) -> dict:
        """Delete a session and its interactions."""
        return {"session_id": args["session_id"], "deleted": self.sessions.delete(args["session_id"])}

    @action(schema.ADD_INTERACTION)
    def add_interaction(self, args: dict, ctx: CallContext) -> dict:
        """Append an interaction to a session."""
        interaction_id = self.sessions.add_interaction(args["session_id"], args["role"], args["content"],
                                                       args["metadata"])
        return {"interaction_id": interaction_id, "session_id": args["session_id"]}

    @action(schema.GET_CONTEXT)
    def get_context(self, args: dict, ctx: CallContext) -> dict:
        """The last `limit` interactions, oldest first."""
        return {"session_id": args["session_id"], "context": self.sessions.context(args["session_id"], args["limit"])}

    @action(schema.SEARCH_INTERACTIONS)
    def search_interactions(self, args: dict, ctx: CallContext) -> dict:
        """Interactions matching a query."""
        results = self.sessions.search(args["query"], args["session_id"], args["limit"])
        return {"results": results, "count": len(results)}

    @action(schema.EXPIRE_SESSIONS)
    def expire_sessions(self, args: dict, ctx: CallContext) -> dict:
        """Run the expiry task now."""
        return {"expired": self.sessions.expire_once(args["now"])}
