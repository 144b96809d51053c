"""UnifiedMemoryReasoningAgent: legacy-protocol.md §2.1 (7105; health 7106 in code, 8105 in YAML: both bound).

Legacy port (JSON, flat fields; status words "ok" / "error" with the error key ``reason``, as the legacy agent):
  update_twin{user_id="default", twin_data}     -> {status:"ok"}        | reason "No twin data provided"
  get_twin{user_id="default"}                   -> {status:"ok", twin}   ({} when there is none)
  delete_twin{user_id="default"}                -> {status:"ok"}        | reason "User not found"
  add_interaction{session_id, interaction_type, content, metadata?} -> {status:"ok"} | reason "Missing required fields"
  get_context{session_id, max_tokens?}          -> {status:"ok", context:{summary dict}} | reason "Missing session_id"
  add_error_pattern{error_type, pattern, solution?} -> {status:"ok"}    | reason "Missing required fields"
  get_error_solution{error_message}             -> {status:"ok", solution}  (null when nothing matches)
                                                   | reason "Missing error_message"
  ping | health | health_check                  -> the health reply below
  other errors -> {status:"error", reason}: "Unknown action", "Invalid <field>" (mistyped), "Invalid pattern: ...",
                  "Invalid request format", "database is not available".
  Summaries, history limits and pattern matching: agents/memory_hub/reasoning.py.
Health (legacy health ports 7106 and 8105, any message; and the health actions above):
  base health + {service:"unified_memory_reasoning_agent", request_count, error_count, last_request_time,
  health_check_count, update_count, get_count, delete_count, successful_updates, failed_updates, total_twins,
  total_sessions, total_error_patterns}

Native (agent "UnifiedMemoryReasoningAgent"):
  update_twin{user_id="default", twin_data:{...}} -> {user_id}
  get_twin{user_id} -> {user_id, twin}              delete_twin{user_id} -> {user_id, deleted}   (not_found if none)
  add_interaction{session_id, interaction_type, content, metadata?} -> {id, session_id, timestamp, summarized}
  get_interactions{session_id, limit=50} -> {session_id, interactions:[{type, content, timestamp, metadata}]}
  session_context{session_id, max_tokens?} -> {session_id, context:{summary dict}}
  add_error_pattern{error_type, pattern, solution?} -> {error_type}
  get_error_solution{error_message} -> {solution, match:{error_type, pattern, solution, occurrences, last_seen}|null}
  list_error_patterns{} -> {patterns:[...]}
  semantic_search{query, k?, mode=hybrid|vector|keyword, filters?} -> {query, mode, results:[{memory_id, score,
      vector_score, keyword_score, memory}]}                route GET /embedding/{query} (k, mode from the query)
  get_context{query, token_budget?, k?, mode?, filters?} -> {query, token_budget, tokens, memories, duplicates_dropped,
      text}: top memories, near-duplicates dropped, packed into the budget.
  Search actions: bad_request for a blank query; unavailable when the hub runs without search, or when the
  embedding model is still loading at the request's deadline (retryable, retry_after_ms; until then they wait).
"""
from __future__ import annotations

import threading
import time
from typing import Any

from agents.memory_hub.reasoning import ReasoningSettings, ReasoningStore, require_twin
from bus.errors import BadRequest, HubError, NotFound, Unavailable
from bus.handler import CallContext, Handler, Route, action, base_legacy_health
from bus.legacy import LegacyCall, LegacyTable, LegacyVocabulary
from schemas.base import Schema
from schemas.memory_hub import unified_memory_reasoning_agent as schema

TOTALS_TTL_S = 5.0
HEALTH_ACTIONS = ("ping", "health", "health_check")
COUNTERS = ("request_count", "error_count", "health_check_count", "update_count", "get_count", "delete_count",
            "successful_updates", "failed_updates")


class UnifiedMemoryReasoningAgent(Handler):
    name = "UnifiedMemoryReasoningAgent"
    legacy_ports = (7105,)
    legacy_health_ports = (7106, 8105)
    legacy_vocabulary = LegacyVocabulary(key="reason", unknown_action="Unknown action")
    routes = (Route("GET", "/embedding/{query}", "semantic_search"),)

    def __init__(self, section: ReasoningSettings, sql: Any = None, search: Any = None):
        """``search``: the hub's search engine (None: get_context answers unavailable)."""
        self.section = section
        self.search = search
        self.reasoning = ReasoningStore(sql, section) if sql is not None else None
        self._started_at = time.time()
        self._lock = threading.Lock()
        self.counters = dict.fromkeys(COUNTERS, 0)
        self.last_request_time: float | None = None
        self._totals: tuple[float, dict[str, int]] = (0.0, {})

    def _store(self) -> ReasoningStore:
        if self.reasoning is None:
            raise Unavailable("database is not available")
        return self.reasoning

    def _search(self) -> Any:
        if self.search is None:
            raise Unavailable("semantic search is not configured on this hub (search.enabled)")
        return self.search

    # ------------------------------------------------------------------ native: twins, interactions, errors
    @action(schema.UPDATE_TWIN)
    def update_twin(self, args: dict, ctx: CallContext) -> dict:
        """Create or replace a user's digital twin."""
        self._store().update_twin(args["user_id"], args["twin_data"])
        return {"user_id": args["user_id"]}

    @action(schema.GET_TWIN)
    def get_twin(self, args: dict, ctx: CallContext) -> dict:
        """A user's digital twin."""
        return {"user_id": args["user_id"], "twin": require_twin(self._store().get_twin(args["user_id"]),
                                                                 args["user_id"])}

    @action(schema.DELETE_TWIN)
    def delete_twin(self, args: dict, ctx: CallContext) -> dict:
        """Delete a user's digital twin."""
        if not self._store().delete_twin(args["user_id"]):
            raise NotFound(f"no digital twin for user {args['user_id']}")
        return {"user_id": args["user_id"], "deleted": True}

    @action(schema.ADD_INTERACTION)
    def add_interaction(self, args: dict, ctx: CallContext) -> dict:
        """Record an interaction of a session."""
        return self._store().add_interaction(args["session_id"], args["interaction_type"], args["content"],
                                             args["metadata"])

    @action(schema.GET_INTERACTIONS)
    def get_interactions(self, args: dict, ctx: CallContext) -> dict:
        """A session's interactions, newest first."""
        return {"session_id": args["session_id"],
                "interactions": self._store().interactions(args["session_id"], args["limit"])}

    @action(schema.SESSION_CONTEXT)
    def session_context(self, args: dict, ctx: CallContext) -> dict:
        """The session summary (the legacy get_context)."""
        return {"session_id": args["session_id"],
                "context": self._store().session_summary(args["session_id"], args["max_tokens"])}

    @action(schema.ADD_ERROR_PATTERN)
    def add_error_pattern(self, args: dict, ctx: CallContext) -> dict:
        """Create or replace an error pattern."""
        self._store().add_error_pattern(args["error_type"], args["pattern"], args["solution"])
        return {"error_type": args["error_type"]}

    @action(schema.GET_ERROR_SOLUTION)
    def get_error_solution(self, args: dict, ctx: CallContext) -> dict:
        """The solution of the first matching pattern."""
        match = self._store().match_error(args["error_message"])
        return {"solution": match["solution"] if match else None, "match": match}

    @action(schema.LIST_ERROR_PATTERNS)
    def list_error_patterns(self, args: dict, ctx: CallContext) -> dict:
        """Every error pattern with its counts."""
        return {"patterns": self._store().error_patterns()}

    # ------------------------------------------------------------------ native: search
    @action(schema.SEMANTIC_SEARCH)
    def semantic_search(self, args: dict, ctx: CallContext) -> dict:
        """Memories nearest the query (vector, keyword or hybrid)."""
        query, k = _query(args["query"]), _k(args["k"])
        results = self._search().search(query, k, args["mode"], args["filters"], ctx.deadline)
        return {"query": query, "mode": args["mode"], "results": results}

    @action(schema.GET_CONTEXT)
    def get_context(self, args: dict, ctx: CallContext) -> dict:
        """Top memories for the query, deduplicated, packed into a token budget."""
        query = _query(args["query"])
        budget = args["token_budget"] or self.section.default_token_budget
        return self._search().pack_context(query, budget, args["filters"], args["k"], args["mode"], ctx.deadline)

    # ------------------------------------------------------------------ legacy
    def handle_legacy(self, request: Any, port: int) -> dict:
        if isinstance(request, dict) and request.get("action") not in HEALTH_ACTIONS:
            with self._lock:                         # every non-health request counts, unknown ones too
                self.counters["request_count"] += 1
                self.last_request_time = time.time()
        return super().handle_legacy(request, port)

    def legacy_table(self, call: LegacyCall) -> LegacyTable:
        def health(_request: dict) -> dict:
            self._count("health_check_count")
            return self.legacy_health(call.port)

        return LegacyTable({
            "update_twin": self._legacy_update_twin,
            "get_twin": self._legacy_get_twin,
            "delete_twin": self._legacy_delete_twin,
            "add_interaction": self._legacy_add_interaction,
            "get_context": self._legacy_get_context,
            "add_error_pattern": self._legacy_add_error_pattern,
            "get_error_solution": self._legacy_get_error_solution,
            **dict.fromkeys(HEALTH_ACTIONS, health),
        }, errors=((HubError, self._legacy_failure),))

    def _legacy_failure(self, err: HubError) -> dict:
        self._count("error_count")
        return self.legacy_vocabulary.error(err.message)

    def _legacy_update_twin(self, req: dict) -> dict:
        self._count("update_count")
        user_id = _legacy_str(req, "user_id", "default")
        twin_data = req.get("twin_data")
        if not twin_data:
            self._count("failed_updates")
            return {"status": "error", "reason": "No twin data provided"}
        try:
            self._store().update_twin(user_id, twin_data)
        except HubError:
            self._count("failed_updates")
            return {"status": "error", "reason": "Failed to save twin data"}
        self._count("successful_updates")
        return {"status": "ok"}

    def _legacy_get_twin(self, req: dict) -> dict:
        self._count("get_count")
        twin = self._store().get_twin(_legacy_str(req, "user_id", "default"))
        return {"status": "ok", "twin": {} if twin is None else twin}

    def _legacy_delete_twin(self, req: dict) -> dict:
        self._count("delete_count")
        if self._store().delete_twin(_legacy_str(req, "user_id", "default")):
            return {"status": "ok"}
        return {"status": "error", "reason": "User not found"}

    def _legacy_add_interaction(self, req: dict) -> dict:
        if not all(req.get(k) for k in ("session_id", "interaction_type", "content")):
            return {"status": "error", "reason": "Missing required fields"}
        args = _legacy_validate(schema.ADD_INTERACTION, req)
        self._store().add_interaction(args["session_id"], args["interaction_type"], args["content"], args["metadata"])
        return {"status": "ok"}

    def _legacy_get_context(self, req: dict) -> dict:
        if not req.get("session_id"):
            return {"status": "error", "reason": "Missing session_id"}
        args = _legacy_validate(schema.SESSION_CONTEXT, req)
        return {"status": "ok", "context": self._store().session_summary(args["session_id"], args["max_tokens"])}

    def _legacy_add_error_pattern(self, req: dict) -> dict:
        if not (req.get("error_type") and req.get("pattern")):
            return {"status": "error", "reason": "Missing required fields"}
        args = _legacy_validate(schema.ADD_ERROR_PATTERN, req)
        self._store().add_error_pattern(args["error_type"], args["pattern"], args["solution"])
        return {"status": "ok"}

    def _legacy_get_error_solution(self, req: dict) -> dict:
        if not req.get("error_message"):
            return {"status": "error", "reason": "Missing error_message"}
        args = _legacy_validate(schema.GET_ERROR_SOLUTION, req)
        match = self._store().match_error(args["error_message"])
        return {"status": "ok", "solution": match["solution"] if match else None}

    def _count(self, name: str) -> None:
        with self._lock:
            self.counters[name] += 1

    # ------------------------------------------------------------------ health
    def legacy_health(self, port: int) -> dict:
        reply = base_legacy_health(self.name, self._started_at)
        with self._lock:
            reply.update({"service": "unified_memory_reasoning_agent", **self.counters,
                          "last_request_time": self.last_request_time})
        reply.update(self._cached_totals())
        return reply

    def _cached_totals(self) -> dict[str, int]:
        stamp, totals = self._totals
        if time.monotonic() - stamp > TOTALS_TTL_S and self.reasoning is not None:
            try:
                totals = self.reasoning.totals()
            except HubError:
                totals = {}
            self._totals = (time.monotonic(), totals)
        return dict(totals)


def _legacy_str(req: dict, name: str, default: str) -> str:
    value = req.get(name)
    if value is None or value == "":
        return default
    if not isinstance(value, str) or len(value) > 128:
        raise BadRequest(f"Invalid {name}")
    return value


def _legacy_validate(fields: Schema, req: dict) -> dict:
    """The native schema on the legacy fields (unknown keys ignored); errors as 'Invalid <field>'."""
    args = {k: req[k] for k in fields.fields if req.get(k) is not None}
    try:
        return fields.validate(args)
    except BadRequest as err:
        raise BadRequest(f"Invalid {err.details.get('field', 'request')}") from err


def _query(query: str) -> str:
    if not query.strip():
        raise BadRequest("query must not be empty", details={"field": "query"})
    return query


def _k(value: int | str | None) -> int | None:
    if value is None or isinstance(value, int):
        return value
    if not value.strip().isdigit():
        raise BadRequest("k must be an integer", details={"field": "k"})
    return int(value.strip())
