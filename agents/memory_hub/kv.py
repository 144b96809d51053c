"""MemoryClient's key/value store: durable in SQL (``kv_entries``, msgpack values), hot in Redis db0 (``kv:{key}``).

* ``get(key)`` -> ``{key, value, expires_at}``; ``NotFound`` for a missing or expired key (an expired row
  is deleted on the way). ``get_async(key)``: a ``Deferred`` of ``get`` that never blocks the
  caller: the Redis copy is read through the ``RedisReader`` (the hub's router loop drives it), and only a
  miss (or a Redis failure) continues on a small thread pool of its own (SQL). The keys asked for during
  one pass of the loop are read together: one ``MGET`` sent when the loop ticks the reader before it polls.
  A key read that way before, and unchanged since, is answered at once from the copy held in process
  (``near_cache_bytes``; Redis tracks the reader's connection and pushes invalidations, see
  ``stores/near_cache.py``), without a Redis round trip.
* ``set(key, value, ttl=None)`` -> ``{key, expires_at, created}``: any msgpack-able value; ``ttl`` seconds.
* ``delete(key)``; ``list(prefix, limit)`` -> live keys in key order.

Reads are served from the Redis copy without SQL when it is current (``hot_cache.HotCache``: writers
invalidate after their commit, a namespace generation disowns copies that a failed invalidation or a Redis
restart may have left behind); otherwise from SQL, and the copy is filled again.
"""
from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from collections.abc import Callable
from functools import partial
from typing import Any

import msgpack
from sqlalchemy import delete, select

from agents.memory_hub.hot_cache import HotCache, Lookup
from agents.memory_hub.memory_records import stamp
from agents.memory_hub.stores.near_cache import NearCache, near_lease_s
from agents.memory_hub.stores.redis_reader import RedisReader
from agents.memory_hub.stores.sql import SqlStore
from agents.memory_hub.stores.sql_models import KEY_LEN, KVEntry
from bus.deferred import Deferred
from bus.errors import BadRequest, NotFound, TooLarge
from bus.settings import setting

@dataclass(frozen=True)
class KeyValueSettings:
    """The ``memory_client`` section: the key-value store and the legacy port's circuit breaker."""

    max_value_bytes: int = setting(1 << 20, minimum=1, doc="packed (msgpack) size of one value")
    max_ttl_s: float = setting(365 * 86400.0, minimum=1.0)
    cache_ttl_s: float = setting(3600.0, minimum=1.0,
                                 doc="Redis copy kv:{key} (never longer than the key's own ttl)")
    list_limit: int = setting(1000, minimum=1, maximum=1_000_000, doc="most keys one kv_list returns")
    sql_threads: int = setting(4, minimum=1, maximum=256, doc="threads of get_async for reads that need SQL")
    near_cache_bytes: int = setting(32 << 20, minimum=0,
                                    doc="copies of read values held in process, kept current by Redis client "
                                        "tracking (0 = off)")
    failure_threshold: int = setting(3, minimum=1, doc="legacy circuit breaker of the MemoryClient port")
    reset_timeout_s: float = setting(60.0, minimum=0.0)


def _pack(value: Any) -> bytes:
    return msgpack.packb(value, use_bin_type=True)


def _unpack(raw: bytes) -> Any:
    return msgpack.unpackb(raw, raw=False, strict_map_key=False)


Waiting = tuple[str, "Deferred[dict[str, Any]]"]     # a key and the result of its ``get_async``


def check_key(key: Any) -> str:
    if not isinstance(key, str) or not key:
        raise BadRequest("key must be a non-empty string", details={"field": "key"})
    if len(key) > KEY_LEN:
        raise BadRequest(f"key is longer than {KEY_LEN} characters", details={"field": "key"})
    return key


class KeyValues:
    def __init__(self, sql: SqlStore, redis: Any = None, settings: KeyValueSettings = KeyValueSettings(),
                 retry_s: float = 5.0):
        self.sql = sql
        self.settings = settings
        namespace = redis.ns("kv") if redis is not None else None
        near = (NearCache(settings.near_cache_bytes, clear_on=[f"_gen:{namespace.prefix}".encode()],
                          lease_s=near_lease_s(redis.settings.socket_timeout_s))
                if namespace is not None and settings.near_cache_bytes else None)
        self.cache = HotCache(namespace, self.settings.cache_ttl_s, retry_s, encode=_pack, decode=_unpack,
                              near=near)
        # a reply overdue this long fails the reads waiting on the reader (they continue on the blocking path)
        overdue_s = max(2.0, 4 * redis.settings.socket_timeout_s) if redis is not None else 0.0
        self.reader = (RedisReader(namespace.client.connection_pool, overdue_s, on_tick=self._send_batch,
                                   near=near)
                       if namespace is not None else None)
        self._batch: list[Waiting] = []     # reads asked for on the reader's thread since its last tick
        self._sql_pool = ThreadPoolExecutor(self.settings.sql_threads, thread_name_prefix="kv-sql")

    def close(self) -> None:
        self._send_batch_to_sql()
        if self.reader is not None:
            self.reader.close()
        self._sql_pool.shutdown(wait=False)

    def get_async(self, key: str) -> Deferred[dict[str, Any]]:
        """``get`` without blocking the caller (see the module docstring); errors arrive in the future."""
        key = check_key(key)
        future: Deferred[dict[str, Any]] = Deferred()
        if self.reader is not None and self.reader.driven_here():
            held = self.cache.near_hit(key)
            if held is not None and not self._expired(held["e"]):
                future.set_result({"key": key, "value": held["v"], "expires_at": held["e"]})
            else:
                self._batch.append((key, future))       # read with the others at the reader's next tick
        else:
            self._in_pool(future, partial(self.get, key))
        return future

    def _send_batch(self) -> None:
        """Before the loop polls (the reader's ``tick``): the batch's Redis copies in one ``MGET``."""
        if not self._batch:
            return
        batch, self._batch = self._batch, []
        if not self.cache.lookup_async([key for key, _ in batch], self.reader, partial(self._answer, batch)):
            self._answer(batch, None)

    def _answer(self, batch: list[Waiting], found: list[Lookup] | None) -> None:
        """Current copies answer their futures here; the rest read SQL (and fill the copy) on the pool."""
        if found is None:                   # no lookup (Redis skipped, dirty, down): the blocking path
            for key, future in batch:
                self._in_pool(future, partial(self.get, key))
            return
        now = time.time()
        for (key, future), lookup in zip(batch, found):
            if lookup.hit:
                expires_at = lookup.value["e"]
                if expires_at is None or expires_at > now:
                    future.set_result({"key": key, "value": lookup.value["v"], "expires_at": expires_at})
                    continue
            self._in_pool(future, partial(self._get, key, lookup))

    def _send_batch_to_sql(self) -> None:
        batch, self._batch = self._batch, []
        self._answer(batch, None)

    def _in_pool(self, future: Deferred[dict[str, Any]], fn: Callable[[], dict[str, Any]]) -> None:
        def run() -> None:
            try:
                future.set_result(fn())
            except BaseException as exc:
                future.set_exception(exc)

        self._sql_pool.submit(run)

    def get(self, key: str) -> dict[str, Any]:
        key = check_key(key)
        return self._get(key, self.cache.lookup(key))

    @staticmethod
    def _hit(key: str, found: Lookup) -> dict[str, Any]:
        return {"key": key, "value": found.value["v"], "expires_at": found.value["e"]}

    def _get(self, key: str, found: Lookup) -> dict[str, Any]:
        if found.hit and not self._expired(found.value["e"]):
            return self._hit(key, found)
        with self.sql.session() as s:
            row = s.execute(select(KVEntry.value, KVEntry.expires_at).where(KVEntry.key == key)).first()
        if row is None or self._expired(row.expires_at):
            if row is not None:
                self._purge(key)
            raise NotFound(f"no key {key}", details={"key": key})
        value = _unpack(row.value)
        self._fill(key, found, {"e": row.expires_at, "v": value})
        return {"key": key, "value": value, "expires_at": row.expires_at}

    def set(self, key: str, value: Any, ttl: float | None = None) -> dict[str, Any]:
        key = check_key(key)
        if value is None:
            raise BadRequest("value is required", details={"field": "value"})
        try:
            packed = _pack(value)
        except (TypeError, ValueError, OverflowError) as exc:
            raise BadRequest(f"value cannot be stored: {exc}", details={"field": "value"}) from None
        if len(packed) > self.settings.max_value_bytes:
            raise TooLarge(f"value is {len(packed)} bytes packed, over the {self.settings.max_value_bytes}-byte "
                           "limit", details={"field": "value"})
        if ttl is not None and (isinstance(ttl, bool) or not isinstance(ttl, (int, float))
                                or not 0 < ttl <= self.settings.max_ttl_s):
            raise BadRequest(f"ttl must be a number of seconds in (0, {self.settings.max_ttl_s}]",
                             details={"field": "ttl"})
        now = stamp()
        expires_at = now + float(ttl) if ttl is not None else None
        with self.sql.transaction() as s:
            row = s.get(KVEntry, key)
            created = row is None
            if created:
                s.add(KVEntry(key=key, value=packed, expires_at=expires_at, created_at=now, updated_at=now))
            else:
                row.value, row.expires_at, row.updated_at = packed, expires_at, now
        self.cache.invalidate(key)
        return {"key": key, "expires_at": expires_at, "created": created}

    def delete(self, key: str) -> None:
        key = check_key(key)
        with self.sql.transaction() as s:
            row = s.get(KVEntry, key)
            live = row is not None and not self._expired(row.expires_at)
            if row is not None:
                s.delete(row)
        self.cache.invalidate(key)
        if not live:
            raise NotFound(f"no key {key}", details={"key": key})

    def list(self, prefix: str = "", limit: int | None = None) -> list[str]:
        if not isinstance(prefix, str) or len(prefix) > KEY_LEN:
            raise BadRequest("prefix must be a string", details={"field": "prefix"})
        cap = self.settings.list_limit
        limit = cap if limit is None else max(1, min(int(limit), cap))
        now = time.time()
        in_range = (KVEntry.key >= prefix, KVEntry.key < prefix + "\U0010ffff") if prefix else ()
        stmt = (select(KVEntry.key).where(*in_range, (KVEntry.expires_at.is_(None)) | (KVEntry.expires_at > now))
                .order_by(KVEntry.key).limit(limit))
        with self.sql.session() as s:
            return [k for k in s.execute(stmt).scalars() if k.startswith(prefix)]

    def _fill(self, key: str, found: Any, item: dict[str, Any]) -> None:
        ttl = self.settings.cache_ttl_s
        if item["e"] is not None:
            ttl = min(ttl, item["e"] - time.time())
        if ttl > 0:
            self.cache.fill(key, found, item, ttl)

    def _purge(self, key: str) -> None:
        with self.sql.transaction() as s:
            s.execute(delete(KVEntry).where(KVEntry.key == key, KVEntry.expires_at <= time.time()))
        self.cache.invalidate(key)

    @staticmethod
    def _expired(expires_at: float | None) -> bool:
        return expires_at is not None and expires_at <= time.time()
