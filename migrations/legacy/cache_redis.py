"""CacheManager's Redis keys -> MemoryHub's cache (db0, ``cache:`` prefix).

Legacy keys (legacy-protocol.md §2.4, Redis db 0): ``memory:{memory_id}`` and ``{cache_type}:{key}``,
values JSON text written with SETEX. They are written through MemoryHub's ``CacheStore``
(agents/memory_hub/cache.py), so they land as ``cache:{cache_type}:{key}`` with the LRU bookkeeping of
the hub and the remaining TTL (a key without a TTL gets its type's TTL). Selected types: the hub's
configured cache types (``nlu_results``, ``model_decisions``, ``context_summaries``, ``tool_responses``,
``memory``) plus ``--cache-type`` ones. Everything else in the database is reported, not copied: MOS's
``mem:`` keys are its cache of SQL rows (migrated with unified_memory.db), other prefixes belong to other
agents unless named with ``--cache-type``.

Idempotent: an entry already in the hub with the same value is ``unchanged``; with another value it is
skipped (the hub's is newer). ``--dry-run`` reads only.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from collections.abc import Iterable

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from agents.memory_hub.cache import CacheSettings, CacheStore
from agents.memory_hub.stores.embedded_redis import EmbeddedRedis, socket_path_for
from agents.memory_hub.stores.redis_store import RedisStore
from migrations.legacy.common import ImportRefused, Report, TableReport

MOS_PREFIX = "mem"


def import_cache_redis(source_url: str, target_url: str | None, *, data_dir: str | Path | None = None,
                       cache_types: Iterable[str] = (), cache_settings: CacheSettings | None = None,
                       dry_run: bool = False, overwrite: bool = False) -> Report:
    section = cache_settings or CacheSettings()
    selected = set(section.types) | set(section.extra_types) | set(cache_types)
    source = _client(source_url)
    embedded: EmbeddedRedis | None = None
    if target_url is None:
        target_url, embedded = _hub_redis(data_dir)
    store = RedisStore(target_url)
    report = Report("cache-redis", _redact(source_url), _redact(target_url), dry_run, overwrite)
    try:
        cache = CacheStore(store, section)
        table = report.table("redis db0", "cache:")
        for key in source.scan_iter(match="*", count=500):
            _copy(source, cache, key.decode("utf-8", "replace"), selected, table, dry_run)
    except redis.exceptions.ConnectionError as exc:
        raise ImportRefused(f"Redis not reachable: {exc}") from exc
    finally:
        source.close()
        store.close()
        if embedded is not None:
            embedded.stop()
    return report


def _client(url: str) -> redis.Redis:
    client = redis.Redis.from_url(url, socket_connect_timeout=5, socket_timeout=30, retry=Retry(NoBackoff(), 1))
    try:
        client.ping()
    except redis.exceptions.RedisError as exc:
        raise ImportRefused(f"legacy Redis {_redact(url)} not reachable: {exc}") from exc
    return client


def _hub_redis(data_dir: str | Path | None) -> tuple[str, EmbeddedRedis | None]:
    """The running hub's embedded redis-server, or one started on its data dir for the import."""
    if data_dir is None:
        raise ImportRefused("give --redis-url, or --data-dir of a MemoryHub using its embedded redis-server")
    socket_path = socket_path_for(Path(data_dir).resolve())
    url = f"unix://{socket_path}"
    if socket_path.exists():
        probe = redis.Redis(unix_socket_path=str(socket_path), socket_connect_timeout=1,
                            retry=Retry(NoBackoff(), 0))
        try:
            probe.ping()
            return url, None
        except (redis.exceptions.RedisError, OSError):
            pass                       # a stale socket: EmbeddedRedis reaps it
        finally:
            probe.close()
    embedded = EmbeddedRedis(Path(data_dir))
    return embedded.start(), embedded


def _copy(source: redis.Redis, cache: CacheStore, key: str, selected: set[str], table: TableReport,
          dry_run: bool) -> None:
    table.read += 1
    cache_type, sep, entry = key.partition(":")
    if not sep or not entry:
        table.skip(key, "not a '{cache_type}:{key}' key")
        return
    if cache_type == MOS_PREFIX:
        table.skip(key, "MemoryOrchestratorService cache of SQL rows (migrate unified_memory.db instead)")
        return
    if cache_type not in selected:
        table.skip(key, f"cache type '{cache_type}' not selected (add --cache-type {cache_type})")
        return
    kind = source.type(key).decode()
    if kind != "string":
        table.skip(key, f"a Redis {kind}, not a cached value")
        return
    raw, pttl = source.get(key), source.pttl(key)
    if raw is None or pttl == -2:
        table.skip(key, "expired while migrating")
        return
    value = _decode(raw)
    text = cache.encode(value)
    current = cache.ns.client.get(cache.entry_key(cache_type, entry))
    if current is not None and current.decode("utf-8", "replace") == text:
        table.unchanged += 1
        return
    if current is not None and not table.overwrite:
        table.skip(key, "already in the hub with a different value (the hub's copy is kept)")
        return
    if not dry_run:
        cache.put(cache_type, entry, value, ttl=pttl / 1000.0 if pttl and pttl > 0 else None)
    if current is None:
        table.inserted += 1
    else:
        table.updated += 1


def _decode(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        return raw.decode("utf-8", "replace")


def _redact(url: str) -> str:
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        return f"{scheme}://***@{rest.split('@', 1)[1]}"
    return url
