"""Open MemoryHub's stores from settings: SQL (migrated), Redis (configured URL or embedded server).

    stores = open_stores(settings, data_dir)     # settings: the hub's full settings dict
    ...                                          # stores.sql, stores.redis, stores.embedded
    stores.close()                               # Redis clients, then the embedded server, then SQL

Sections read: ``storage`` (``database_url``, ``redis_url``; common to both hubs), ``sql``, ``redis``,
``embedded_redis`` (this package's ``DEFAULTS``, merged in ``DEFAULTS`` below for the hub to include).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from bus.config import merge_defaults
from agents.memory_hub.stores import embedded_redis, redis_store, sql
from agents.memory_hub.stores.embedded_redis import EmbeddedRedis
from agents.memory_hub.stores.redis_store import RedisStore
from agents.memory_hub.stores.sql import SqlStore

log = logging.getLogger(__name__)

DEFAULTS: dict[str, Any] = merge_defaults(sql.DEFAULTS, redis_store.DEFAULTS, embedded_redis.DEFAULTS)


@dataclass
class Stores:
    sql: SqlStore
    redis: RedisStore
    embedded: EmbeddedRedis | None = None

    def health_checks(self) -> dict[str, tuple[bool, Any]]:
        return {"sql": self.sql.health(), "redis": self.redis.health()}

    def close(self) -> None:
        self.redis.close()
        if self.embedded is not None:
            self.embedded.stop()
        self.sql.close()


def open_stores(settings: Mapping[str, Any], data_dir: str | Path, *, migrate: bool = True) -> Stores:
    """SQL first (migrated to head unless ``migrate=False``), then Redis; nothing is left running on error."""
    storage = settings.get("storage", {})
    data_dir = Path(data_dir)
    store = SqlStore(storage.get("database_url") or None, data_dir=data_dir, settings=settings.get("sql"))
    embedded: EmbeddedRedis | None = None
    try:
        if migrate:
            revision = store.migrate()
            log.info("sql schema at revision %s", revision)
        url = storage.get("redis_url") or None
        if url is None:
            embedded = EmbeddedRedis(data_dir, settings=settings.get("embedded_redis"))
            url = embedded.start()
        return Stores(sql=store, redis=RedisStore(url, settings=settings.get("redis")), embedded=embedded)
    except BaseException:
        if embedded is not None:
            embedded.stop()
        store.close()
        raise
