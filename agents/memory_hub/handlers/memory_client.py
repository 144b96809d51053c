"""MemoryClient: legacy-protocol.md §1.1 (MainPC MemoryClient, YAML 5713/6713).

The legacy agent was an in-process client library of MemoryOrchestratorService; its port only ever
answered health. The hub serves on 5713, directly from the shared memory domain, the requests clients
sent through it, and the native key/value store of the seed API.

Legacy port 5713 (JSON):
  ping / health            -> BaseAgent health + {status:"HEALTHY", service:"MemoryClient", uptime_seconds,
                              request_count}   (also the reply to any message on the health port 6713)
  health_check             -> {status:"success", agent:"MemoryClient", connected, circuit_breaker:{state,
                              failure_count, last_failure_time, failure_threshold, reset_timeout}}
  reset_circuit_breaker    -> {status:"success", message:"Circuit breaker reset successfully", new_state}
  {action, data} of every MemoryOrchestratorService action and create_session -> the MOS reply
                              (memory_orchestrator_legacy.py); while the breaker is open (3 store
                              failures in a row, 60 s reset) -> {status:"error", message:"Circuit breaker is
                              open due to previous failures. Try again later.", circuit_state}
  anything else            -> {status:"error", message:"This client does not accept remote commands"}

Native (agent "MemoryClient"), values durable in SQL ``kv_entries``, hot in Redis db0 ``kv:{key}``:
  kv_get{key}                 -> {key, value, expires_at}          (not_found: missing or expired)
  kv_set{key, value, ttl?}    -> {key, expires_at, created}        (too_large over memory_client.max_value_bytes)
  kv_delete{key}              -> {key, deleted: true}              (not_found)
  kv_list{prefix?, limit?}    -> {prefix, keys, count}
Routes: GET/PUT/DELETE /kv/{key} (PUT body {"value": ..., "ttl"?} or the bare value),
GET /kv (query/body prefix, limit).
"""
from __future__ import annotations

import threading
import time
from collections.abc import Callable
from functools import cached_property, partial
from typing import Any

from agents.memory_hub.handlers.memory_orchestrator_service import StoreProbe
from agents.memory_hub.kv import KeyValueSettings, KeyValues
from agents.memory_hub.memories import Memories
from agents.memory_hub.memory_orchestrator_legacy import LegacyMemoryApi
from agents.memory_hub.sessions import Sessions
from bus.deferred import Deferred
from bus.errors import BadRequest
from bus.handler import CallContext, Handler, Route, action, base_legacy_health
from bus.legacy import LegacyCall, LegacyTable, LegacyVocabulary
from schemas.memory_hub import memory_client as schema


class CircuitBreaker:
    """The legacy MemoryClient breaker: ``failure_threshold`` store failures in a row open it; after
    ``reset_timeout`` seconds one trial request is let through (HALF_OPEN); a success closes it."""

    def __init__(self, failure_threshold: int = 3, reset_timeout: float = 60.0):
        self.failure_threshold = failure_threshold
        self.reset_timeout = reset_timeout
        self.failure_count = 0
        self.last_failure_time = 0.0
        self.state = "CLOSED"
        self._lock = threading.Lock()

    def allow(self) -> bool:
        with self._lock:
            if self.state == "OPEN" and time.time() - self.last_failure_time >= self.reset_timeout:
                self.state = "HALF_OPEN"
            return self.state != "OPEN"

    def record(self, ok: bool) -> None:
        with self._lock:
            if ok:
                self.state, self.failure_count = "CLOSED", 0
                return
            self.failure_count += 1
            self.last_failure_time = time.time()
            if self.failure_count >= self.failure_threshold or self.state == "HALF_OPEN":
                self.state = "OPEN"

    def reset(self) -> None:
        with self._lock:
            self.state, self.failure_count = "CLOSED", 0

    def status(self) -> dict[str, Any]:
        return {"state": self.state, "failure_count": self.failure_count, "last_failure_time": self.last_failure_time,
                "failure_threshold": self.failure_threshold, "reset_timeout": self.reset_timeout}


class MemoryClient(Handler):
    name = "MemoryClient"
    legacy_ports = (5713,)
    legacy_health_ports = (6713,)
    legacy_vocabulary = LegacyVocabulary(unknown_action="This client does not accept remote commands")
    routes = (
        Route("GET", "/kv", "kv_list"),
        Route("GET", "/kv/{key:path}", "kv_get"),
        Route("PUT", "/kv/{key:path}", "kv_set"),
        Route("DELETE", "/kv/{key:path}", "kv_delete"),
    )

    def __init__(self, section: KeyValueSettings, memories: Memories, sessions: Sessions, sql: Any,
                 redis: Any = None):
        self.settings = section
        self.kv = KeyValues(sql, redis, section, memories.settings.cache_retry_s)
        self.breaker = CircuitBreaker(section.failure_threshold, section.reset_timeout_s)
        self.legacy = LegacyMemoryApi(memories, sessions.create, self.breaker.record)
        self.probe = StoreProbe(sql, redis)
        self.started_at = time.time()

    # ------------------------------------------------------------------ legacy
    def legacy_table(self, call: LegacyCall) -> LegacyTable:
        def health(_request: dict) -> dict:
            return self.legacy_health(call.port)

        return LegacyTable({**self._memory_actions, "ping": health, "health": health,
                            "health_check": self._legacy_health_check,
                            "reset_circuit_breaker": self._legacy_reset_breaker})

    @cached_property
    def _memory_actions(self) -> dict[str, Callable[[dict], dict]]:
        """MemoryOrchestratorService's legacy actions (memory_orchestrator_legacy.py) behind the breaker."""
        return {name: partial(self._guarded, run) for name, run in self.legacy.requests.items()}

    def _guarded(self, run: Callable[[dict], dict], request: dict) -> dict:
        """A memory action, refused while the breaker is open."""
        if not self.breaker.allow():
            return {"status": "error", "message": "Circuit breaker is open due to previous failures. Try again later.",
                    "circuit_state": self.breaker.state}
        return run(request)

    def _legacy_health_check(self, _request: dict) -> dict:
        return {"status": "success", "agent": self.name, "connected": self.probe()[0],
                "circuit_breaker": self.breaker.status()}

    def _legacy_reset_breaker(self, _request: dict) -> dict:
        self.breaker.reset()
        return {"status": "success", "message": "Circuit breaker reset successfully", "new_state": self.breaker.state}

    def watched(self) -> list:
        return [self.kv.reader] if self.kv.reader is not None else []

    def health_checks(self) -> dict[str, tuple[bool, Any]]:
        """Near copies off (no Redis tracking) is not a failure: reads then ask Redis."""
        near = self.kv.cache.near
        return {"kv_near_copies": (True, near.describe() if near is not None else {"tracking": False})}

    def stop(self) -> None:
        self.kv.close()

    def legacy_health(self, port: int) -> dict:
        return base_legacy_health(self.name, self.started_at, service=self.name,
                                  uptime_seconds=int(time.time() - self.started_at),
                                  request_count=self.legacy_request_count, status="HEALTHY")

    # ------------------------------------------------------------------ native
    @action(schema.KV_GET, inline=True)
    def kv_get(self, args: dict, ctx: CallContext) -> Deferred:
        """The value of a key.

        Inline on the router loop and never blocking: a current Redis copy is read through the loop's own
        non-blocking connection (no thread hop); a miss continues on the key/value store's SQL threads."""
        return self.kv.get_async(args["key"])


    @action(schema.KV_SET)
    def kv_set(self, args: dict, ctx: CallContext) -> dict:
        """Store a value (optional ttl in seconds)."""
        value = args["value"] if args["value"] is not None else args["body"]
        if value is None:
            raise BadRequest("missing field 'value'", details={"field": "value"})
        return self.kv.set(args["key"], value, args["ttl"])

    @action(schema.KV_DELETE)
    def kv_delete(self, args: dict, ctx: CallContext) -> dict:
        """Delete a key."""
        self.kv.delete(args["key"])
        return {"key": args["key"], "deleted": True}

    @action(schema.KV_LIST)
    def kv_list(self, args: dict, ctx: CallContext) -> dict:
        """Live keys starting with prefix, in key order."""
        limit = args["limit"]
        if isinstance(limit, str):
            if not limit.isdigit():
                raise BadRequest("field 'limit' must be integer", details={"field": "limit"})
            limit = int(limit)
        if limit is not None and limit < 1:
            raise BadRequest("field 'limit' must be >= 1", details={"field": "limit"})
        keys = self.kv.list(args["prefix"], limit)
        return {"prefix": args["prefix"], "keys": keys, "count": len(keys)}
