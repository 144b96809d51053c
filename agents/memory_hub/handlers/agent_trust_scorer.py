"""AgentTrustScorer: legacy-protocol.md §2.8 (YAML 7122/8122 and code default 5626/5627: both bound).

Legacy port (JSON, flat fields; replies exactly as the legacy agent):
  log_performance{model_id, success, response_time=0.0, error_message?} -> {status:"success", new_trust_score}
  get_trust_score{model_id}                     -> {status:"success", trust_score}        (0.5 when unknown)
  get_performance_history{model_id, limit=10}   -> {status:"success", history:[{success, response_time, timestamp}]}
                                                   newest first; timestamp "YYYY-MM-DD HH:MM:SS.ffffff" (local)
  health_check                                  -> base health + {status:"ok", service:"AgentTrustScorer", uptime,
                                                   additional_info:{}}
  errors -> {status:"error", message}: a missing field ("Missing required field: 'model_id'"), a mistyped one,
            "Unknown action: X".
  Score = 0.7·successful/total + 0.3·max(0, 1 - response_time/5.0) with the latest response_time
  (agents/memory_hub/trust.py).
  Limits (legacy writes carry no token): a legacy log_performance moves the stored score at most
  trust.legacy_max_step (0.1) towards the formula's value, and a peer may write trust.legacy_writes_per_peer (60)
  times per trust.legacy_window_s (60 s); beyond: {status:"error", message:"Too many trust updates, retry later"}.
Legacy health ports: the same health reply for any message.

Native (agent "AgentTrustScorer"):
  log_performance{model_id, success, response_time?, error_message?} -> {model_id, new_trust_score}
  get_trust_score{model_id}   -> {model_id, trust_score, total_interactions, successful_interactions, last_updated}
  get_performance_history{model_id, limit?} -> {model_id, history:[{success, response_time, timestamp, error_message}]}
  get_trust{user_id}          -> as get_trust_score, keyed user_id;  route GET /trust/{user_id}


"""
from __future__ import annotations

import time
from datetime import datetime
from typing import Any

from agents.memory_hub.auth import SlidingWindowLimiter
from agents.memory_hub.trust import CallFeeder, TrustPolicy, TrustSettings, TrustStore
from bus.errors import BadRequest, Busy, Unavailable
from bus.handler import CallContext, Handler, Route, action, base_legacy_health
from bus.legacy import LegacyCall, LegacyTable, LegacyVocabulary
from schemas.memory_hub import agent_trust_scorer as schema

MAX_HISTORY = 10000


class AgentTrustScorer(Handler):
    name = "AgentTrustScorer"
    legacy_ports = (7122, 5626)
    legacy_health_ports = (8122, 5627)
    legacy_vocabulary = LegacyVocabulary(not_an_object="'{type}' object has no attribute 'get'")
    routes = (Route("GET", "/trust/{user_id}", "get_trust"),)

    def __init__(self, section: TrustSettings, store: TrustStore | None, policy: TrustPolicy, feeder: CallFeeder):
        """``policy`` and ``feeder`` are the hub's (its Assembly runs them); writes here refresh the policy."""
        self.store, self.policy, self.feeder = store, policy, feeder
        self.legacy_max_step = section.legacy_max_step
        self.legacy_writes = SlidingWindowLimiter(section.legacy_writes_per_peer, section.legacy_window_s)
        self.started_at = time.time()

    # ------------------------------------------------------------------ domain
    def log_performance(self, model_id: str, success: bool, response_time: float = 0.0,
                        error_message: str | None = None, max_step: float = 1.0) -> float:
        score = self._store().log_performance(model_id, success, response_time, error_message, max_step)
        self.policy.invalidate(model_id)
        return score

    def record(self, model_id: str) -> dict[str, Any]:
        found = self._store().get_record(model_id)
        if found is None:
            found = {"trust_score": 0.5, "total_interactions": 0, "successful_interactions": 0,
                     "last_updated": None}
        return {"model_id": model_id, **found}

    def _store(self) -> TrustStore:
        if self.store is None:
            raise Unavailable("trust store (SQL) is not configured")
        return self.store

    # ------------------------------------------------------------------ native
    @action(schema.LOG_PERFORMANCE, name="log_performance")
    def log_performance_action(self, args: dict, ctx: CallContext) -> dict:
        """Record one interaction; returns the new score."""
        score = self.log_performance(args["model_id"], args["success"], args["response_time"], args["error_message"])
        return {"model_id": args["model_id"], "new_trust_score": score}

    @action(schema.GET_TRUST_SCORE, name="get_trust_score")
    def get_trust_score_action(self, args: dict, ctx: CallContext) -> dict:
        """Score and counters of one id (0.5 and zeros when unknown)."""
        return self.record(args["model_id"])

    @action(schema.GET_TRUST, name="get_trust")
    def get_trust_action(self, args: dict, ctx: CallContext) -> dict:
        """GET /trust/{user_id}."""
        found = self.record(args["user_id"])
        found["user_id"] = found.pop("model_id")
        return found

    @action(schema.GET_PERFORMANCE_HISTORY, name="get_performance_history")
    def get_performance_history_action(self, args: dict, ctx: CallContext) -> dict:
        """Newest interactions first."""
        return {"model_id": args["model_id"], "history": self._store().get_history(args["model_id"], args["limit"])}

    # ------------------------------------------------------------------ legacy
    def handle_legacy_from(self, request: Any, port: int, peer: str | None) -> dict:
        return self.legacy_reply(request, LegacyCall(port, peer))

    def legacy_table(self, call: LegacyCall) -> LegacyTable:
        return LegacyTable({"log_performance": lambda r: self._legacy_log(r, call.peer),
                            "get_trust_score": self._legacy_score, "get_performance_history": self._legacy_history,
                            "health_check": lambda _r: self.legacy_health(0)})

    def _legacy_log(self, request: dict, peer: str | None) -> dict:
        if self.legacy_writes.hit(peer or "unknown") is not None:
            raise Busy("Too many trust updates, retry later")
        model_id = _model_id(request)
        if "success" not in request:
            raise BadRequest("Missing required field: 'success'")
        response_time = request.get("response_time", 0.0)
        if isinstance(response_time, bool) or not isinstance(response_time, (int, float)):
            raise BadRequest(f"response_time must be a number, got {type(response_time).__name__}")
        error_message = request.get("error_message")
        score = self.log_performance(model_id, bool(request["success"]), float(response_time),
                                     str(error_message)[:1000] if error_message else None, self.legacy_max_step)
        return {"status": "success", "new_trust_score": score}

    def _legacy_score(self, request: dict) -> dict:
        return {"status": "success", "trust_score": self._store().get_trust_score(_model_id(request))}

    def _legacy_history(self, request: dict) -> dict:
        model_id = _model_id(request)
        history = self._store().get_history(model_id, _legacy_limit(request.get("limit", 10)))
        return {"status": "success", "history": [
            {"success": row["success"], "response_time": row["response_time"],
             "timestamp": str(datetime.fromtimestamp(row["timestamp"]))} for row in history]}

    def legacy_health(self, port: int) -> dict:
        return base_legacy_health(self.name, self.started_at, status="ok", service="AgentTrustScorer",
                                  uptime=time.time() - self.started_at, additional_info={})

    def health_checks(self) -> dict[str, tuple[bool, Any]]:
        return {"trust_store": (self.store is not None, "scores in SQL" if self.store else "no SQL store")}

    def stop(self) -> None:
        self.feeder.stop()


def _model_id(request: dict) -> str:
    model_id = request.get("model_id")
    if "model_id" not in request:
        raise BadRequest("Missing required field: 'model_id'")
    if not isinstance(model_id, (str, int)) or isinstance(model_id, bool) or not str(model_id):
        raise BadRequest("model_id must be a non-empty string")
    if len(str(model_id)) > 128:
        raise BadRequest("model_id is too long (max 128)")
    return str(model_id)


def _legacy_limit(raw: Any) -> int:
    """SQLite LIMIT semantics of the legacy query: a negative limit means no limit."""
    try:
        limit = int(raw)
    except (TypeError, ValueError):
        raise BadRequest(f"limit must be an integer, got {raw!r}") from None
    return MAX_HISTORY if limit < 0 else min(limit, MAX_HISTORY)
