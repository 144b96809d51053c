"""Redis copies of SQL rows that are served without asking SQL, and never served stale.

SQL is the truth; a ``HotCache`` holds copies in one Redis namespace. The rules that keep a copy current:

* **Writers invalidate after their commit** (``invalidate``): the key is overwritten with a unique marker
  (not deleted), so a reader that read SQL before the commit cannot put its older copy back.
* **Readers populate by compare-and-set** (``fill``): a copy is stored only if the key still holds what
  the reader saw before it read SQL (nothing, a marker or an older copy) and the generation is unchanged.
* **Generation**: every copy carries the namespace's generation token (key ``_gen:{prefix}``); a read
  fetches the token and the copy in one ``MGET`` and serves the copy only when they match. Bumping the
  token (a new random value) disowns every copy made before it.
* **Dirty**: when an invalidation could not reach Redis, or Redis restarted (a new ``run_id``: it may have
  reloaded older copies from its append-only file), the cache is dirty. While dirty no copy is served and
  nothing is stored; every read goes to SQL and first tries to bump the generation. Only a bump that
  succeeded with no new failure since it began makes the cache clean again. A new ``HotCache`` starts
  dirty: a previous process may have died between a commit and its invalidation.

A Redis failure never fails a request: reads fall back to SQL, and Redis is skipped for ``retry_s``.

**Near copies** (optional, ``near``): the current copies that ``lookup_async`` read are also held in
process (``stores/near_cache.py``: Redis tracks the reader's connection and pushes an invalidation when a
key or the generation changes), and ``near_hit`` serves them without asking Redis. ``invalidate`` drops
them before and after its Redis write; a dirty cache serves none.
"""
from __future__ import annotations

import json
import logging
import secrets
import threading
import time
from collections.abc import Callable
from functools import partial
from itertools import islice
from typing import Any, NamedTuple

import redis

from agents.memory_hub.stores.near_cache import NearCache
from bus.errors import Unavailable

log = logging.getLogger(__name__)

COPY, MARKER = b"c", b"x"
TOKEN_LEN = 16

# KEYS[1] generation, KEYS[2] copy; ARGV: generation seen ("" = none), raw value seen ("" = none),
# new generation if none exists, copy body (without its generation), ttl ms. Returns 1 if stored.
FILL_LUA = """
local gen = redis.call('GET', KEYS[1])
if not gen then
  if ARGV[1] ~= '' then return 0 end
  redis.call('SET', KEYS[1], ARGV[3])
  gen = ARGV[3]
elseif gen ~= ARGV[1] then
  return 0
end
local current = redis.call('GET', KEYS[2]) or ''
if current ~= ARGV[2] then return 0 end
redis.call('SET', KEYS[2], 'c' .. gen .. ARGV[4], 'PX', ARGV[5])
return 1
"""


class Lookup(NamedTuple):
    """What one read saw in Redis: the copy's value when it was current (``hit``), and what ``fill``
    needs to store a new copy safely afterwards. (A named tuple: one is made per read on the router.)"""

    hit: bool
    value: Any
    generation: bytes
    seen: bytes
    started: float
    usable: bool


MISS = Lookup(False, None, b"", b"", 0.0, False)


def _token() -> bytes:
    return secrets.token_hex(TOKEN_LEN // 2).encode()


class HotCache:
    """See the module docstring. ``namespace`` is a ``RedisNamespace`` or None (every read misses)."""

    def __init__(self, namespace: Any, ttl_s: float, retry_s: float = 5.0,
                 encode: Callable[[Any], bytes | str] | None = None,
                 decode: Callable[[bytes], Any] | None = None, near: NearCache | None = None):
        self.ns = namespace
        self.near = near
        self.ttl_s = ttl_s
        self.retry_s = retry_s
        self.encode = encode or (lambda value: json.dumps(value, separators=(",", ":"), default=str))
        self.decode = decode or json.loads
        self.gen_key = f"_gen:{namespace.prefix}" if namespace is not None else ""
        self._fill = namespace.client.register_script(FILL_LUA) if namespace is not None else None
        self._lock = threading.Lock()
        self._failures = 1            # counts failures (and restarts); starts dirty
        self._clean_at = 0            # the failure count the last successful bump covered
        self._down_until = 0.0
        self.hits = self.misses = self.failures = 0
        if namespace is not None and hasattr(namespace, "on_restart"):
            namespace.on_restart(self.mark_dirty)

    # ------------------------------------------------------------------ state
    @property
    def dirty(self) -> bool:
        return self._failures != self._clean_at

    @property
    def usable(self) -> bool:
        return self.ns is not None and time.monotonic() >= self._down_until

    def mark_dirty(self) -> None:
        with self._lock:
            self._failures += 1
        if self.near is not None:
            self.near.clear()

    # ------------------------------------------------------------------ reads
    def lookup(self, key: str) -> Lookup:
        """Look for a current copy of ``key``; ``fill`` with the result after reading SQL on a miss."""
        return self.lookup_many([key])[0]

    def lookup_many(self, keys: list[str]) -> list[Lookup]:
        """``lookup`` of several keys in one round trip (one ``MGET``)."""
        if not keys:
            return []
        if not self.usable or (self.dirty and not self._settle()):
            self.misses += len(keys)
            return [MISS] * len(keys)
        failures = self._failures
        started = time.monotonic()
        found = self._call(self.ns.client.mget, self.gen_key, *[self.ns.key(k) for k in keys])
        if found is None or failures != self._failures:
            self.misses += len(keys)      # Redis failed, or restarted while we read: trust nothing
            return [MISS] * len(keys)
        return self._judge(found, started)

    def near_hit(self, key: str) -> Any:
        """The value of ``key``'s current copy held in process, or None (then ``lookup_async``)."""
        if self.near is None or self._failures != self._clean_at:
            return None
        body = self.near.get((self.ns.prefix + key).encode())
        if body is None:
            return None
        self.hits += 1
        return self.decode(body)

    def lookup_async(self, keys: list[str], reader: Any, done: Callable[[list[Lookup] | None], None]) -> bool:
        """``lookup_many`` through a ``RedisReader`` (no blocking): ``done(lookups)`` is called when the reply
        arrives, or ``done(None)`` when Redis failed meanwhile (then use the blocking path). False, at once:
        not possible now (no connection, Redis skipped, or the cache is dirty: the bump needs the blocking path)."""
        if not keys or not self.usable or self.dirty:
            return False
        redis_keys = [self.ns.prefix + key for key in keys]
        epoch = self.near.epoch() if self.near is not None else None
        return reader.send(partial(self._reply, self._failures, time.monotonic(), epoch, redis_keys, done),
                           b"MGET", self.gen_key, *redis_keys)

    def _reply(self, failures: int, started: float, epoch: int | None, redis_keys: list[str],
               done: Callable[[list[Lookup] | None], None], found: Any) -> None:
        # on a failure the blocking path takes over for these reads; it backs off if Redis is really down
        if type(found) is not list or failures != self._failures:
            done(None)
            return
        lookups = self._judge(found, started)
        if epoch is not None and self.near is not None:
            for redis_key, lookup in zip(redis_keys, lookups):
                if lookup.hit:
                    body = lookup.seen[1 + TOKEN_LEN:]
                    self.near.put(redis_key.encode(), body, len(body), epoch)
        done(lookups)

    def _judge(self, found: list[Any], started: float) -> list[Lookup]:
        """One ``MGET`` reply, ``[generation, raw copy, ...]``: a hit for each copy made in this generation."""
        gen = found[0] or b""
        head = COPY + gen if len(gen) == TOKEN_LEN else None      # how a copy of this generation starts
        decode, lookups, hits = self.decode, [], 0
        for raw in islice(found, 1, None):
            value = None
            if raw is None:
                raw = b""
            elif head is not None and raw.startswith(head):
                try:
                    value = decode(raw[1 + TOKEN_LEN:])
                except (ValueError, TypeError):      # not a copy this code wrote: a miss
                    value = None
            if value is None:
                lookups.append(Lookup(False, None, gen, raw, started, True))
            else:
                lookups.append(Lookup(True, value, gen, raw, started, True))
                hits += 1
        self.hits += hits
        self.misses += len(lookups) - hits
        return lookups

    def get(self, key: str) -> Any:
        """The current copy of ``key`` or None (no ``fill`` afterwards: use ``lookup`` for that)."""
        return self.lookup(key).value

    def fill(self, key: str, lookup: Lookup, value: Any, ttl_s: float | None = None) -> bool:
        """Store ``value`` (just read from SQL) unless a writer or a bump came in between; True if stored."""
        ttl = self.ttl_s if ttl_s is None else ttl_s
        if (not lookup.usable or ttl <= 0 or self.dirty or not self.usable
                or time.monotonic() - lookup.started > ttl / 2):
            return False
        body = self.encode(value)
        body = body.encode() if isinstance(body, str) else body
        stored = self._call(self._fill, [self.gen_key, self.ns.key(key)],
                            [lookup.generation, lookup.seen, _token(), body, max(1, int(ttl * 1000))])
        return bool(stored)

    def ttl(self, key: str) -> float | None:
        """Seconds left of the stored copy (None: absent, no expiry, or Redis unusable)."""
        if not self.usable:
            return None
        ms = self._call(self.ns.client.pttl, self.ns.key(key))
        return None if ms is None or ms < 0 else ms / 1000.0

    # ------------------------------------------------------------------ writes
    def invalidate(self, *keys: str) -> None:
        """After a commit that changed ``keys``: replace their copies by markers (or mark the cache dirty)."""
        if not keys or self.ns is None:
            return
        near_keys = [self.ns.key(key).encode() for key in keys] if self.near is not None else []
        if self.near is not None:
            self.near.drop(near_keys)      # before: no read of this hub serves them from here any more ...
        if not self.usable:
            self.mark_dirty()
            return
        pipe = self.ns.client.pipeline(transaction=False)
        for key in keys:
            pipe.set(self.ns.key(key), MARKER + _token(), px=max(1, int(self.ttl_s * 1000)))
        if self._call(pipe.execute) is None:
            self.mark_dirty()
        if self.near is not None:
            self.near.drop(near_keys)      # ... after: nor one that read Redis before the markers landed

    drop = invalidate

    def bump(self) -> bool:
        """Disown every copy made so far (a new generation token); False if Redis did not take it."""
        bumped = self._call(self.ns.client.set, self.gen_key, _token()) is not None
        if self.near is not None:
            self.near.clear()
        return bumped

    def _settle(self) -> bool:
        """Bump the generation so that copies from before a failure are ignored; True when clean."""
        failures = self._failures
        if not self.bump():
            return False
        with self._lock:
            if self._failures == failures:
                self._clean_at = failures
                log.info("redis cache %s: generation bumped, serving copies again", self.ns.prefix)
        return not self.dirty

    def _call(self, fn: Callable, *args: Any) -> Any:
        try:
            return fn(*args)
        except (Unavailable, redis.RedisError, OSError) as exc:
            self.failures += 1
            self._down_until = time.monotonic() + self.retry_s
            log.warning("redis cache %s skipped for %.1fs: %s", getattr(self.ns, "prefix", "?"), self.retry_s, exc)
            return None
