"""Open MemoryHub's stores: SQL (migrated), Redis (the configured URL, or a private embedded server).

    stores = open_stores(data_dir, database_url=..., redis_url=..., sql=..., redis=..., embedded_redis=...)
    ...                                          # stores.sql, stores.redis, stores.embedded
    stores.close()                               # Redis clients, then the embedded server, then SQL

The URLs come from the common ``storage`` section (None: ``<data_dir>/memory_hub.db`` and an embedded
redis-server); ``sql``, ``redis`` and ``embedded_redis`` are the typed sections of those stores.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agents.memory_hub.stores.embedded_redis import EmbeddedRedis, EmbeddedRedisSettings
from agents.memory_hub.stores.redis_store import RedisSettings, RedisStore
from agents.memory_hub.stores.sql import SqlStore
from agents.sql_engine import SqlSettings

log = logging.getLogger(__name__)


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


def open_stores(data_dir: str | Path, *, database_url: str | None = None, redis_url: str | None = None,
                sql: SqlSettings | None = None, redis: RedisSettings | None = None,
                embedded_redis: EmbeddedRedisSettings | None = None, migrate: bool = True) -> Stores:
    """SQL first (migrated to head unless ``migrate=False``), then Redis; nothing is left running on error."""
    data_dir = Path(data_dir)
    store = SqlStore(database_url or None, data_dir=data_dir, settings=sql)
    embedded: EmbeddedRedis | None = None
    try:
        if migrate:
            revision = store.migrate()
            log.info("sql schema at revision %s", revision)
        url = redis_url or None
        if url is None:
            embedded = EmbeddedRedis(data_dir, settings=embedded_redis)
            url = embedded.start()
        return Stores(sql=store, redis=RedisStore(url, settings=redis), embedded=embedded)
    except BaseException:
        if embedded is not None:
            embedded.stop()
        store.close()
        raise
