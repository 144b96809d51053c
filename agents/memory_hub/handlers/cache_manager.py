"""CacheManager: legacy-protocol.md §2.4 (7102 / health 8102). Typed cache entries in Redis db0.

Legacy port (JSON, flat fields; replies exactly as the legacy agent):
  get_cached_memory{memory_id}           -> {status:"success", data} | {status:"error", message:"Cache miss", data:null}
  cache_memory{memory_id, data, ttl=3600} -> {status:"success", message:"Memory cached successfully"}
  invalidate_memory_cache{memory_id}     -> {status:"success", message:"Memory cache entry invalidated"|"... not found"}
  get{cache_type, key}                   -> as get_cached_memory
  put{cache_type, key, value, ttl?}      -> {status:"success", message:"Cache entry stored"}   (ttl: the type's)
  invalidate{cache_type, key}            -> {status:"success", message:"Cache entry invalidated"|"... not found"}
  flush{cache_type}                      -> {status:"success", message:"Flushed N cache entries"}
  ping | health | health_check           -> the health reply below
  errors -> {status:"error", message}: "Missing memory_id parameter", "Missing required parameters",
            "Missing cache_type or key parameter", "Missing cache_type parameter", "Invalid <field> parameter"
            (mistyped), "Redis is not available" (Redis down: the hub keeps serving and recovers by itself),
            "Unknown action: X".
  Keys: ``memory:{memory_id}`` and ``{cache_type}:{key}`` under the ``cache:`` prefix of db0; values JSON text.
  Default TTLs: nlu_results 300 s, model_decisions 600 s, context_summaries 3600 s, tool_responses 900 s,
  memory 43200 s, other types 3600 s; ``cache_memory`` without ttl: 3600 s, as its legacy code.
  Bounded: each type keeps at most ``max_entries`` (LRU eviction; agents/memory_hub/cache.py).
Health (legacy health port, any message; and the health actions above):
  base health + {status:"ok"|"degraded", redis_available, uptime, name:"CacheManager", version:"1.0.0", port:7102,
  health_port:8102, error_reporting, redis_info:{memory_used, clients_connected, uptime}} (redis_info only while
  Redis is up). Answered from state refreshed by a background thread, never blocking on Redis.

Native (agent "CacheManager"; Redis down -> ``unavailable``, retryable):
  get{cache_type="default", key}              -> {cache_type, key, value, ttl}   (miss: not_found)
  put{cache_type="default", key, value, ttl?} -> {cache_type, key, ttl, evicted}
  invalidate{cache_type="default", key}       -> {cache_type, key, deleted}
  flush{cache_type}                           -> {cache_type, flushed}
  stats{}                                     -> {redis_available, types:{type:{entries, ttl_s, max_entries}}}
  cache_get / cache_put / cache_delete{cache_key="{cache_type}:{key}", value?, ttl?}:
      routes GET / PUT / DELETE /cache/{cache_key}; replies as get / put / invalidate.
"""
from __future__ import annotations

import time
from typing import Any
from collections.abc import Callable

from agents.memory_hub.cache import CacheSettings, CacheStore, split_cache_key
from agents.memory_hub.stores.redis_store import RedisStore
from bus.deferred import Deferred
from bus.errors import HubError, NotFound, Unavailable
from bus.handler import CallContext, Handler, Route, action, base_legacy_health
from bus.legacy import LegacyCall, LegacyTable, LegacyVocabulary
from bus.log import get_logger
from bus.periodic import PeriodicTask
from schemas.memory_hub import cache_manager as schema

log = get_logger("memory_hub.cache_manager")

REDIS_DOWN = {"status": "error", "message": "Redis is not available"}
MAX_ID_LEN = 512


class CacheManager(Handler):
    name = "CacheManager"
    legacy_ports = (7102,)
    legacy_health_ports = (8102,)
    legacy_vocabulary = LegacyVocabulary(missing_action="")   # the agent read request.get("action", "")
    routes = (Route("GET", "/cache/{cache_key}", "cache_get"), Route("PUT", "/cache/{cache_key}", "cache_put"),
              Route("DELETE", "/cache/{cache_key}", "cache_delete"))

    def __init__(self, section: CacheSettings, redis: RedisStore | None, *, error_reporting: bool = False):
        """``error_reporting``: whether the hub reports errors to the ErrorBus (shown in the legacy health)."""
        self.section = section
        self.redis = redis
        self.error_reporting = error_reporting
        self.cache = CacheStore(redis, section) if redis is not None else None
        self._started_at = time.time()
        self._redis_ok = False
        self._redis_info: dict[str, Any] | None = None
        # health replies read Redis's state from here; stale LRU members are swept every maintenance_interval_s
        self._maintenance = PeriodicTask("cache-manager", section.health_refresh_s, self._maintain_once)
        self._sweep_every = max(section.health_refresh_s, section.maintenance_interval_s)
        self._next_sweep = 0.0
        self.refresh_redis_state()

    # ------------------------------------------------------------------ domain (shared by both paths)
    def _store(self) -> CacheStore:
        if self.cache is None:
            raise Unavailable("Redis is not available")
        return self.cache

    def _run(self, fn: Callable[[], Any]) -> Any:
        """Run a Redis operation, tracking availability for the health replies."""
        try:
            result = fn()
        except Unavailable:
            self._redis_ok = False
            raise
        self._redis_ok = True
        return result

    def get_entry(self, cache_type: str, key: str) -> tuple[bool, Any, float | None]:
        return self._run(lambda: self._store().get(cache_type, key))

    def put_entry(self, cache_type: str, key: str, value: Any, ttl: float | None) -> dict[str, Any]:
        return self._run(lambda: self._store().put(cache_type, key, value, ttl))

    def invalidate_entry(self, cache_type: str, key: str) -> bool:
        return self._run(lambda: self._store().invalidate(cache_type, key))

    def flush_type(self, cache_type: str) -> int:
        return self._run(lambda: self._store().flush(cache_type))

    # ------------------------------------------------------------------ native
    @action(schema.GET, inline=True)
    def get(self, args: dict, ctx: CallContext) -> Deferred:
        """The cached value and seconds left; not_found on a miss.

        Inline on the router loop and never blocking: the script runs through the loop's own non-blocking
        Redis connection (no thread hop), once for all the gets of a loop pass; the blocking path takes over
        only when that cannot be used."""
        return self._store().get_async(args["cache_type"], args["key"], self._entry_reply)

    @action(schema.PUT)
    def put(self, args: dict, ctx: CallContext) -> dict:
        """Store a JSON value for ttl seconds (default: the type's TTL); LRU-bounded per type."""
        return self._native_put(args["cache_type"], args["key"], args["value"], args["ttl"])

    @action(schema.INVALIDATE)
    def invalidate(self, args: dict, ctx: CallContext) -> dict:
        """Delete one entry."""
        deleted = self.invalidate_entry(args["cache_type"], args["key"])
        return {"cache_type": args["cache_type"], "key": args["key"], "deleted": deleted}

    @action(schema.FLUSH)
    def flush(self, args: dict, ctx: CallContext) -> dict:
        """Delete every entry of a type."""
        return {"cache_type": args["cache_type"], "flushed": self.flush_type(args["cache_type"])}

    @action(schema.STATS)
    def stats(self, args: dict, ctx: CallContext) -> dict:
        """Entries, TTL and bound per type."""
        return {"redis_available": True, "types": self._run(lambda: self._store().stats())}

    @action(schema.CACHE_GET)
    def cache_get(self, args: dict, ctx: CallContext) -> dict:
        """GET /cache/{cache_key}."""
        return self._native_get(*split_cache_key(args["cache_key"]))

    @action(schema.CACHE_PUT)
    def cache_put(self, args: dict, ctx: CallContext) -> dict:
        """PUT /cache/{cache_key}."""
        cache_type, key = split_cache_key(args["cache_key"])
        return self._native_put(cache_type, key, args["value"], args["ttl"])

    @action(schema.CACHE_DELETE)
    def cache_delete(self, args: dict, ctx: CallContext) -> dict:
        """DELETE /cache/{cache_key}."""
        cache_type, key = split_cache_key(args["cache_key"])
        return {"cache_type": cache_type, "key": key, "deleted": self.invalidate_entry(cache_type, key)}

    def _native_get(self, cache_type: str, key: str) -> dict:
        return self._entry_reply(cache_type, key, *self.get_entry(cache_type, key))

    @staticmethod
    def _entry_reply(cache_type: str, key: str, hit: bool, value: Any, ttl: float | None) -> dict:
        if not hit:
            raise NotFound(f"no cache entry {cache_type}:{key}")
        return {"cache_type": cache_type, "key": key, "value": value, "ttl": ttl}

    def _native_put(self, cache_type: str, key: str, value: Any, ttl: float | None) -> dict:
        stored = self.put_entry(cache_type, key, value, ttl)
        return {"cache_type": cache_type, "key": key, **stored}

    # ------------------------------------------------------------------ legacy
    def legacy_table(self, call: LegacyCall) -> LegacyTable:
        def health(_request: dict) -> dict:
            self.refresh_redis_state()
            return self.legacy_health(call.port)

        return LegacyTable({
            "get_cached_memory": self._legacy_get_cached_memory,
            "cache_memory": self._legacy_cache_memory,
            "invalidate_memory_cache": self._legacy_invalidate_memory_cache,
            "get": self._legacy_get,
            "put": self._legacy_put,
            "invalidate": self._legacy_invalidate,
            "flush": self._legacy_flush,
            "ping": health, "health": health, "health_check": health,
        }, errors=((Unavailable, lambda _: dict(REDIS_DOWN)),))

    def _legacy_get_cached_memory(self, req: dict) -> dict:
        memory_id = _legacy_id(req.get("memory_id"), "memory_id")
        if memory_id is None:
            return {"status": "error", "message": "Missing memory_id parameter"}
        return self._legacy_lookup("memory", memory_id)

    def _legacy_cache_memory(self, req: dict) -> dict:
        memory_id = _legacy_id(req.get("memory_id"), "memory_id")
        if memory_id is None or req.get("data") is None:
            return {"status": "error", "message": "Missing required parameters"}
        ttl = _legacy_ttl(req.get("ttl", self.section.cache_memory_ttl_s))
        self.put_entry("memory", memory_id, req["data"], ttl)
        return {"status": "success", "message": "Memory cached successfully"}

    def _legacy_invalidate_memory_cache(self, req: dict) -> dict:
        memory_id = _legacy_id(req.get("memory_id"), "memory_id")
        if memory_id is None:
            return {"status": "error", "message": "Missing memory_id parameter"}
        found = self.invalidate_entry("memory", memory_id)
        return {"status": "success", "message": f"Memory cache entry {'invalidated' if found else 'not found'}"}

    def _legacy_get(self, req: dict) -> dict:
        cache_type, key = _legacy_type(req.get("cache_type")), _legacy_id(req.get("key"), "key")
        if cache_type is None or key is None:
            return {"status": "error", "message": "Missing cache_type or key parameter"}
        return self._legacy_lookup(cache_type, key)

    def _legacy_put(self, req: dict) -> dict:
        cache_type, key = _legacy_type(req.get("cache_type")), _legacy_id(req.get("key"), "key")
        if cache_type is None or key is None or req.get("value") is None:
            return {"status": "error", "message": "Missing required parameters"}
        ttl = req.get("ttl")
        self.put_entry(cache_type, key, req["value"], None if ttl is None else _legacy_ttl(ttl))
        return {"status": "success", "message": "Cache entry stored"}

    def _legacy_invalidate(self, req: dict) -> dict:
        cache_type, key = _legacy_type(req.get("cache_type")), _legacy_id(req.get("key"), "key")
        if cache_type is None or key is None:
            return {"status": "error", "message": "Missing cache_type or key parameter"}
        found = self.invalidate_entry(cache_type, key)
        return {"status": "success", "message": f"Cache entry {'invalidated' if found else 'not found'}"}

    def _legacy_flush(self, req: dict) -> dict:
        cache_type = _legacy_type(req.get("cache_type"))
        if cache_type is None:
            return {"status": "error", "message": "Missing cache_type parameter"}
        return {"status": "success", "message": f"Flushed {self.flush_type(cache_type)} cache entries"}

    def _legacy_lookup(self, cache_type: str, key: str) -> dict:
        hit, value, _ = self.get_entry(cache_type, key)
        if hit:
            return {"status": "success", "data": value}
        return {"status": "error", "message": "Cache miss", "data": None}

    # ------------------------------------------------------------------ health
    def legacy_health(self, port: int) -> dict:
        reply = base_legacy_health(self.name, self._started_at)
        reply.update({
            "status": "ok" if self._redis_ok else "degraded",
            "redis_available": self._redis_ok,
            "uptime": time.time() - self._started_at,
            "name": self.name,
            "version": "1.0.0",
            "port": self.legacy_ports[0],
            "health_port": self.legacy_health_ports[0],
            "error_reporting": self.error_reporting,
        })
        if self._redis_ok and self._redis_info is not None:
            reply["redis_info"] = dict(self._redis_info)
        return reply

    def health_checks(self) -> dict[str, tuple[bool, Any]]:
        near = self.cache.near if self.cache is not None else None
        return {"cache_redis": (self._redis_ok, {"redis_available": self._redis_ok,
                                                 "near_copies": near.describe() if near is not None else None})}

    def refresh_redis_state(self) -> None:
        """Ping Redis and read its INFO (never raises); used by the background thread and health actions."""
        redis = self.redis
        ok = redis is not None and redis.available()
        info = None
        if ok:
            try:
                raw = redis.info()
                info = {"memory_used": raw.get("memory_used") or "N/A",
                        "clients_connected": raw.get("clients_connected") or 0, "uptime": raw.get("uptime") or 0}
            except Unavailable:
                ok = False
        self._redis_ok, self._redis_info = ok, info

    # ------------------------------------------------------------------ background
    def start(self) -> None:
        self._next_sweep = time.monotonic() + self._sweep_every
        self._maintenance.start()

    def stop(self) -> None:
        self._maintenance.stop(5)
        if self.cache is not None:
            self.cache.close()

    def watched(self) -> list:
        return [self.cache.batched] if self.cache is not None else []

    def _maintain_once(self) -> None:
        self.refresh_redis_state()
        if self._redis_ok and self.cache is not None and time.monotonic() >= self._next_sweep:
            self._next_sweep = time.monotonic() + self._sweep_every
            try:
                removed = self.cache.sweep()
                log.debug("cache_sweep", removed=removed)
            except Unavailable:
                self._redis_ok = False


class _LegacyInvalid(HubError):
    code = "bad_request"


def _legacy_id(value: Any, name: str) -> str | None:
    """A legacy id (string or integer, formatted into the key as the legacy f-string did); None if missing."""
    if value is None or value == "" or (value == 0 and not isinstance(value, bool)):
        return None                                  # the legacy `if not memory_id` (False is mistyped)
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise _LegacyInvalid(f"Invalid {name} parameter")
    text = str(value)
    if len(text) > MAX_ID_LEN:
        raise _LegacyInvalid(f"Invalid {name} parameter")
    return text


def _legacy_type(value: Any) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str) or len(value) > 128:
        raise _LegacyInvalid("Invalid cache_type parameter")
    return value


def _legacy_ttl(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise _LegacyInvalid("Invalid ttl parameter")
    return value
