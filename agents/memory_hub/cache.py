"""CacheManager's domain: typed cache entries in Redis db0 with per-type TTLs and a bounded LRU per type.

Keys (all under the ``cache:`` namespace prefix of db0, see ``stores/redis_store.py``):

* ``cache:{cache_type}:{key}`` an entry; its value is the JSON text of the cached value (as the legacy
  agent stored it with ``SETEX``). The legacy memory keys ``memory:{memory_id}`` are entries of the type
  ``memory``, so ``get_cached_memory{memory_id: 7}`` and ``get{cache_type: "memory", key: "7"}`` are the same.
* ``cache:_lru:{cache_type}`` a sorted set of the full entry keys of one type scored by access order
  (a per-type counter). ``_lru`` (and ``_lru:...``) is therefore not accepted as a cache type.

Eviction (the legacy config named ``max_size`` per type but never enforced it): a write that takes a
type past its ``max_entries`` deletes the least recently used entries of that type until it fits; reads
refresh the access order. Writes and reads are one Lua script each, so the bound holds under concurrency.
The native gets of one router loop pass share one script call (``BatchedGets``): it serves them in request
order, each hit taking the next score, exactly as one call per get back to back would. Entries that expired
by TTL leave stale members in the sorted set; they count against the bound until the maintenance pass
(``sweep``) or an eviction removes them, so the number of live entries never exceeds it.

Near copies (``near_cache_bytes``): the entries the loop's script calls read are also held in process, with
their expiry, kept current by Redis client tracking (``stores/near_cache.py``). A native get of such an entry
is answered at once from there; its access still reaches Redis, in request order, within 10 ms (with the next
script call for gets that need Redis, or in a call of its own without a reply: ``BatchedGets``). ``put``,
``invalidate`` and ``flush`` drop the copies before and after their Redis write.

Errors: Redis down or unreachable raises ``RedisUnavailable`` ("Redis is not available"); bad input raises
``BadRequest`` naming the field; a value over ``max_value_bytes`` raises ``TooLarge``.
"""
from __future__ import annotations

import contextlib
import json
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from typing import Any
from collections.abc import Callable, Iterator

from agents.memory_hub.stores.near_cache import NearCache, near_lease_s
from agents.memory_hub.stores.redis_reader import RedisReader
from agents.memory_hub.stores.redis_store import RedisNamespace, RedisStore, RedisUnavailable, redis_errors
from bus.deferred import Deferred
from bus.errors import BadRequest, TooLarge
from bus.settings import SettingError, setting

LRU_TYPE = "_lru"

@dataclass(frozen=True)
class CacheTypeSettings:
    """One cache type's policy; None: the section's ``default_ttl_s`` / ``default_max_entries``."""

    ttl_s: int | None = setting(None, minimum=1)
    max_entries: int | None = setting(None, minimum=0, doc="0 = unbounded")


def _legacy_types() -> dict[str, CacheTypeSettings]:
    # the legacy per-type policy (TTL) plus the bound it configured but never enforced
    return {"nlu_results": CacheTypeSettings(300, 1000), "model_decisions": CacheTypeSettings(600, 500),
            "context_summaries": CacheTypeSettings(3600, 200), "tool_responses": CacheTypeSettings(900, 1000),
            "memory": CacheTypeSettings(43200, 5000)}


@dataclass(frozen=True)
class CacheSettings:
    """The ``cache_manager`` section."""

    types: dict[str, CacheTypeSettings] = field(default_factory=_legacy_types)
    extra_types: dict[str, CacheTypeSettings] = field(default_factory=dict)  # more types, same shape
    default_ttl_s: int = setting(3600, minimum=1, doc="types not listed")
    default_max_entries: int = setting(1000, minimum=0, doc="types not listed (0 = unbounded)")
    cache_memory_ttl_s: int = setting(3600, minimum=1,
                                      doc="legacy `cache_memory` default ttl (its code said 1 h, not the type's 12 h)")
    max_ttl_s: int = setting(315360000, minimum=1, doc="10 years")
    max_value_bytes: int = setting(1048576, minimum=1, doc="JSON text of one value")
    maintenance_interval_s: float = setting(60.0, minimum=0.05, doc="sweep of stale LRU members + Redis stats")
    health_refresh_s: float = setting(2.0, minimum=0.05,
                                      doc="how often the background thread re-checks Redis for health replies")
    near_cache_bytes: int = setting(32 << 20, minimum=0,
                                    doc="copies of read entries held in process, kept current by Redis client "
                                        "tracking (0 = off)")

    def __post_init__(self) -> None:
        if LRU_TYPE in self.types or LRU_TYPE in self.extra_types:
            raise SettingError("types", f"a cache type may not be named {LRU_TYPE!r}")

# Access order: each write or hit takes the type's highest score + 1 (a per-type counter; ties impossible).
NEXT_SCORE = """
local top = redis.call('ZREVRANGE', KEYS[2], 0, 0, 'WITHSCORES')
local score = 1
if top[2] then score = tonumber(top[2]) + 1 end
"""

# KEYS[1] entry, KEYS[2] lru set; ARGV value, ttl_ms, max_entries -> number of live entries evicted
PUT_LUA = NEXT_SCORE + """
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
redis.call('ZADD', KEYS[2], score, KEYS[1])
local max = tonumber(ARGV[3])
if max <= 0 then return 0 end
local over = redis.call('ZCARD', KEYS[2]) - max
if over <= 0 then return 0 end
local victims = redis.call('ZRANGE', KEYS[2], 0, over - 1)
local evicted = 0
for _, k in ipairs(victims) do
  if k ~= KEYS[1] then evicted = evicted + redis.call('DEL', k) end
end
redis.call('ZREMRANGEBYRANK', KEYS[2], 0, over - 1)
return evicted
"""

# KEYS[1] entry, KEYS[2] lru set -> {value, pttl}, or {nil, nil} on a miss. The pttl is text: an array of
# bulk strings is what the reader parses on its fast path.
GET_LUA = """
local v = redis.call('GET', KEYS[1])
if not v then return {false, false} end
""" + NEXT_SCORE + """
redis.call('ZADD', KEYS[2], score, KEYS[1])
return {v, tostring(redis.call('PTTL', KEYS[1]))}
"""

# GET_LUA for many gets: KEYS entry, lru set, entry, lru set, ... -> {value, pttl, value, pttl, ...}. Hits
# take increasing scores in KEYS order, as one GET_LUA call per pair back to back would give them: the top
# score of each set is read once and every hit on it is added by one ZADD. (One get costs Redis less with
# GET_LUA: no tables to collect the adds.)
GET_MANY_LUA = """
local out, top, adds = {}, {}, {}
for i = 1, #KEYS, 2 do
  local entry, lru = KEYS[i], KEYS[i + 1]
  local v = redis.call('GET', entry)
  if v then
    local score = top[lru]
    if not score then
      local highest = redis.call('ZREVRANGE', lru, 0, 0, 'WITHSCORES')
      score = 0
      if highest[2] then score = tonumber(highest[2]) end
      adds[lru] = {}
    end
    score = score + 1
    top[lru] = score
    local add = adds[lru]
    add[#add + 1] = score
    add[#add + 1] = entry
    out[#out + 1] = v
    out[#out + 1] = tostring(redis.call('PTTL', entry))
  else
    out[#out + 1] = false
    out[#out + 1] = false
  end
end
for lru, add in pairs(adds) do
  redis.call('ZADD', lru, unpack(add))
end
return out
"""

# KEYS[1] entry, KEYS[2] lru set -> 1 if the entry existed
DEL_LUA = """
redis.call('ZREM', KEYS[2], KEYS[1])
return redis.call('DEL', KEYS[1])
"""

Shape = Callable[[str, str, bool, Any, float | None], Any]   # (cache_type, key, hit, value, ttl)
QueuedGet = tuple[str, str, Shape | None, Deferred[Any] | None]  # cache_type, key, shape, its future
# (shape and future None: an access already answered from the near cache, sent only to move the LRU order)
Fallback = Callable[[list[QueuedGet], list[str]], None]        # gets and their keys -> the blocking path
MAX_BATCH = 256                                                # gets in one call (a loop pass reads up to 256)
ACCESS_DELAY_S = 0.01        # accesses answered from near copies wait this long at most for a call to join


class BatchedGets:
    """The native gets of one router loop pass, sent as one ``GET_MANY_LUA`` call (``GET_LUA`` for one)
    when the loop ticks (before it polls, where the reader would have written them anyway): one script run
    and one reply per pass instead of one per get. The loop polls this object in place of the reader
    (``fileno``/``ready``/``tick``). ``add`` works only on the loop's thread (the first to tick); gets the
    reader cannot send, or whose call fails, go to ``fallback`` (the blocking path) together.

    Accesses already answered from near copies (no future) only move the LRU order: they join the next call
    made for a get that needs Redis, in request order, or go alone, without a reply (``CLIENT REPLY SKIP``),
    once the oldest has waited ``ACCESS_DELAY_S`` (or ``MAX_BATCH`` wait): one script call per 10 ms at most
    while every get is answered in process, instead of one per pass."""

    def __init__(self, reader: RedisReader, get_sha: str, get_many_sha: str, fallback: Fallback,
                 near: NearCache | None = None) -> None:
        self.reader = reader
        self.near = near
        self._get_sha = get_sha
        self._get_many_sha = get_many_sha
        self._fallback = fallback
        self._gets: list[QueuedGet] = []
        self._keys: list[str] = []
        self._asking = 0                    # gets in ``_gets`` that wait for their reply (have a future)
        self._accesses_since = 0.0          # when the oldest access-only entry was queued
        self._owner: int | None = None

    def add(self, get: QueuedGet, entry_key: str, lru_key: str) -> bool:
        """Queue ``get`` for this pass's call; False (nothing queued) off the loop's thread."""
        if threading.get_ident() != self._owner:
            return False
        if get[3] is not None:
            self._asking += 1
        elif len(self._gets) == self._asking:
            self._accesses_since = time.monotonic()
        self._gets.append(get)
        self._keys += (entry_key, lru_key)
        if len(self._gets) >= MAX_BATCH:
            self._send()
        return True

    def driven_here(self) -> bool:
        return threading.get_ident() == self._owner

    def fileno(self) -> int | None:
        return self.reader.fileno()

    def ready(self) -> None:
        self.reader.ready()

    def tick(self) -> bool:
        if self._owner is None:
            self._owner = threading.get_ident()
        if self._asking or (self._gets and time.monotonic() - self._accesses_since >= ACCESS_DELAY_S):
            self._send()
        # accesses still waiting: the loop must come back within ACCESS_DELAY_S (True: poll briefly)
        return self.reader.tick() or bool(self._gets)

    def close(self) -> None:
        gets, self._gets, self._keys, self._asking = self._gets, [], [], 0
        for get in gets:
            if get[3] is not None:
                get[3].set_exception(RedisUnavailable())

    def _send(self) -> None:
        gets, keys, asking = self._gets, self._keys, self._asking
        self._gets, self._keys, self._asking = [], [], 0
        near, sent = self.near, time.monotonic()
        epoch = near.epoch() if near is not None else None

        def reply(found: Any) -> None:
            if isinstance(found, list) and len(found) == 2 * len(gets):
                settle(gets, found)
                if epoch is not None and near is not None:
                    keep(near, keys, found, sent, epoch)
            else:                       # an error (e.g. NOSCRIPT, Redis failing): the blocking path
                self._fallback(gets, keys)

        sha = self._get_sha if len(gets) == 1 else self._get_many_sha
        # accesses answered from near copies only: their reply is not needed, and would wake the loop again
        if not asking and self.reader.send_unanswered(b"EVALSHA", sha, b"%d" % len(keys), *keys):
            return
        if not self.reader.send(reply, b"EVALSHA", sha, b"%d" % len(keys), *keys):
            self._fallback(gets, keys)


def settle(gets: list[QueuedGet], found: list[Any]) -> None:
    """Complete each get's future from a ``GET_LUA``/``GET_MANY_LUA`` reply (value, pttl per get)."""
    for i, (cache_type, key, shape, future) in enumerate(gets):
        if future is None or shape is None:
            continue
        try:
            future.set_result(shape(cache_type, key, *_entry(found[2 * i], found[2 * i + 1])))
        except BaseException as exc:
            future.set_exception(exc)


def keep(near: NearCache, keys: list[str], found: list[Any], sent: float, epoch: int) -> None:
    """Hold the entries a script call read (with their expiry, counted from when the call was sent)."""
    for i in range(0, len(found), 2):
        raw = found[i]
        if raw is not None:
            ms = int(found[i + 1]) if found[i + 1] is not None else -1
            near.put(keys[i].encode(), (raw, sent + ms / 1000.0 if ms >= 0 else None), len(raw), epoch)


_GLOB = re.compile(r"([*?\[\]\\])")


@dataclass(frozen=True)
class TypePolicy:
    ttl_s: int
    max_entries: int


class CacheStore:
    """Get/put/invalidate/flush of typed entries; see the module docstring for keys and eviction."""

    def __init__(self, redis: RedisStore, section: CacheSettings = CacheSettings()) -> None:
        self.redis = redis
        self.section = section
        self.policies = _policies(self.section)
        self.ns: RedisNamespace = redis.cache
        client = self.ns.client
        self._put = client.register_script(PUT_LUA)
        self._get = client.register_script(GET_LUA)
        self._get_many = client.register_script(GET_MANY_LUA)
        self._del = client.register_script(DEL_LUA)
        # get_async: the script through the router loop's reader, the gets of one loop pass in one call;
        # the blocking path when that cannot be used
        self.near = (NearCache(section.near_cache_bytes, lease_s=near_lease_s(redis.settings.socket_timeout_s))
                     if section.near_cache_bytes else None)
        self.reader = RedisReader(client.connection_pool, max(2.0, 4 * redis.settings.socket_timeout_s),
                                  near=self.near)
        self._blocking = ThreadPoolExecutor(2, thread_name_prefix="cache-get")
        self.batched = BatchedGets(self.reader, self._get.sha, self._get_many.sha, self._get_blocking, self.near)

    def close(self) -> None:
        self.reader.close()
        self.batched.close()
        self._blocking.shutdown(wait=False)

    # ------------------------------------------------------------------ policy
    def policy(self, cache_type: str) -> TypePolicy:
        return self.policies.get(cache_type) or TypePolicy(self.section.default_ttl_s,
                                                           self.section.default_max_entries)

    def entry_key(self, cache_type: str, key: str) -> str:
        return self.ns.key(f"{cache_type}:{key}")

    def lru_key(self, cache_type: str) -> str:
        return self.ns.key(f"{LRU_TYPE}:{cache_type}")

    # ------------------------------------------------------------------ operations
    def put(self, cache_type: str, key: str, value: Any, ttl: float | None = None) -> dict[str, Any]:
        """Store ``value`` (JSON) for ``ttl`` seconds (default: the type's); returns ttl and evictions."""
        check_type(cache_type)
        ttl_s = self.policy(cache_type).ttl_s if ttl is None else self.check_ttl(ttl)
        text = self.encode(value)
        entry_key = self.entry_key(cache_type, key)
        with redis_errors(), self._dropping(entry_key):
            evicted = self._put(keys=[entry_key, self.lru_key(cache_type)],
                                args=[text, max(1, int(round(ttl_s * 1000))), self.policy(cache_type).max_entries])
        return {"ttl": ttl_s, "evicted": int(evicted)}

    @contextlib.contextmanager
    def _dropping(self, *entry_keys: str) -> Iterator[None]:
        """Around a write of these entries (none: every entry): their near copies go before and after it."""
        near = self.near
        if near is None:
            yield
            return
        keys = [key.encode() for key in entry_keys]
        drop = partial(near.drop, keys) if keys else near.clear
        drop()
        try:
            yield
        finally:
            drop()

    def get(self, cache_type: str, key: str) -> tuple[bool, Any, float | None]:
        """``(hit, value, seconds_left)``; a hit refreshes the entry's LRU position."""
        check_type(cache_type)
        with redis_errors():
            raw, pttl = self._get(keys=[self.entry_key(cache_type, key), self.lru_key(cache_type)])
        return _entry(raw, pttl)

    def get_async(self, cache_type: str, key: str, shape: Shape) -> Deferred[Any]:
        """``get`` without blocking the caller: a future of ``shape(cache_type, key, hit, value, seconds_left)``
        (or of the exception ``shape`` raises). On the thread that drives ``batched`` the get joins the loop
        pass's script call; when that cannot run it (another thread, no connection, the script not loaded in
        Redis yet, Redis failing), the same script runs blocking on a thread of its own."""
        check_type(cache_type)
        future: Deferred[Any] = Deferred()
        get = (cache_type, key, shape, future)
        entry_key, lru_key = self.entry_key(cache_type, key), self.lru_key(cache_type)
        if self.near is not None and self.batched.driven_here() and self._near_get(get, entry_key):
            self.batched.add((cache_type, key, None, None), entry_key, lru_key)     # its access, in order
            return future
        if not self.batched.add(get, entry_key, lru_key):
            self._get_blocking([get], [entry_key, lru_key])
        return future

    def _near_get(self, get: QueuedGet, entry_key: str) -> bool:
        """Answer ``get`` from the near copy of its entry; False when there is none (or it expired)."""
        assert self.near is not None
        held = self.near.get(entry_key.encode())
        if held is None:
            return False
        raw, expires = held
        left = None if expires is None else expires - time.monotonic()
        if left is not None and left <= 0:
            return False
        cache_type, key, shape, future = get
        assert shape is not None and future is not None
        try:
            future.set_result(shape(cache_type, key, True, decode(raw), left))
        except BaseException as exc:
            future.set_exception(exc)
        return True

    def _get_blocking(self, gets: list[QueuedGet], keys: list[str]) -> None:
        self._blocking.submit(self._settle_blocking, gets, keys)

    def _settle_blocking(self, gets: list[QueuedGet], keys: list[str]) -> None:
        try:
            with redis_errors():         # redis-py loads the script when Redis does not have it (NOSCRIPT)
                found = self._get(keys=keys) if len(gets) == 1 else self._get_many(keys=keys)
        except BaseException as exc:
            for get in gets:
                if get[3] is not None:
                    get[3].set_exception(exc)
            return
        settle(gets, found)

    def invalidate(self, cache_type: str, key: str) -> bool:
        check_type(cache_type)
        entry_key = self.entry_key(cache_type, key)
        with redis_errors(), self._dropping(entry_key):
            return bool(self._del(keys=[entry_key, self.lru_key(cache_type)]))

    def flush(self, cache_type: str) -> int:
        """Delete every entry of a type (SCAN ``{type}:*`` + DEL); returns how many were deleted."""
        check_type(cache_type)
        with self._dropping():
            deleted = self.ns.delete_matching(_GLOB.sub(r"\\\1", cache_type) + ":*")
            with redis_errors():
                self.ns.client.delete(self.lru_key(cache_type))
        return deleted

    def count(self, cache_type: str) -> int:
        """Entries tracked for a type (may include entries that expired since the last sweep)."""
        with redis_errors():
            return int(self.ns.client.zcard(self.lru_key(cache_type)))

    def stats(self) -> dict[str, Any]:
        """Tracked entries and policy of every type that has entries or a configured policy."""
        types = set(self.policies) | {self.ns.strip(k)[len(LRU_TYPE) + 1:] for k in self._lru_keys()}
        return {t: {"entries": self.count(t), **vars(self.policy(t))} for t in sorted(types)}

    def sweep(self, batch: int = 500) -> int:
        """Drop LRU members whose entry is gone (expired by TTL or deleted directly); returns how many."""
        removed = 0
        client = self.ns.client
        with redis_errors():
            for lru in self._lru_keys():
                members = [m for m, _ in client.zscan_iter(lru, count=batch)]
                for start in range(0, len(members), batch):
                    chunk = members[start:start + batch]
                    pipe = client.pipeline(transaction=False)
                    for member in chunk:
                        pipe.exists(member)
                    gone = [m for m, alive in zip(chunk, pipe.execute()) if not alive]
                    if gone:
                        removed += int(client.zrem(lru, *gone))
        return removed

    def _lru_keys(self) -> list[bytes]:
        with redis_errors():
            return list(self.ns.client.scan_iter(match=self.ns.key(f"{LRU_TYPE}:*"), count=500))

    # ------------------------------------------------------------------ checks
    def check_ttl(self, ttl: Any) -> float:
        if isinstance(ttl, bool) or not isinstance(ttl, (int, float)) or not 0 < ttl <= self.section.max_ttl_s:
            raise BadRequest(f"ttl must be a number of seconds in (0, {self.section.max_ttl_s}]",
                             details={"field": "ttl"})
        return ttl

    def encode(self, value: Any) -> str:
        try:
            text = json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise BadRequest(f"value is not JSON-serializable: {exc}", details={"field": "value"}) from exc
        if len(text.encode("utf-8")) > self.section.max_value_bytes:
            raise TooLarge(f"value larger than {self.section.max_value_bytes} bytes", details={"field": "value"})
        return text


def _entry(raw: bytes | None, pttl: bytes | None) -> tuple[bool, Any, float | None]:
    """One get of the script's reply (value and pttl, or nil and nil) as (hit, value, seconds left)."""
    if raw is None:
        return False, None, None
    ms = int(pttl) if pttl is not None else -1
    return True, decode(raw), (ms / 1000.0 if ms >= 0 else None)


def check_type(cache_type: str) -> None:
    if cache_type == LRU_TYPE or cache_type.startswith(LRU_TYPE + ":"):
        raise BadRequest(f"cache_type '{LRU_TYPE}' is reserved", details={"field": "cache_type"})


_JSON = json.JSONDecoder()


def decode(raw: bytes) -> Any:
    """An entry's value: its JSON text, else the text itself (as ``json.loads``, then the text)."""
    try:
        # json.loads of UTF-8 JSON without detecting the encoding (valid JSON has no NUL among its first bytes)
        return _JSON.decode(raw.decode())
    except ValueError:
        pass
    try:
        return json.loads(raw)              # the other encodings json.loads detects (UTF-16/32, a BOM)
    except ValueError:
        return raw.decode("utf-8", "replace")


def split_cache_key(cache_key: str) -> tuple[str, str]:
    """``"nlu_results:abc"`` -> ``("nlu_results", "abc")``; a key without ``:`` is of type ``default``."""
    cache_type, sep, key = cache_key.partition(":")
    if not sep:
        return "default", cache_key
    if not cache_type or not key:
        raise BadRequest("cache_key must be '{cache_type}:{key}' with both parts non-empty",
                         details={"field": "cache_key"})
    return cache_type, key


def _policies(section: CacheSettings) -> dict[str, TypePolicy]:
    types = {**section.types, **section.extra_types}
    return {name: TypePolicy(section.default_ttl_s if conf.ttl_s is None else conf.ttl_s,
                             section.default_max_entries if conf.max_entries is None else conf.max_entries)
            for name, conf in types.items()}
