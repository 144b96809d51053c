"""What MemoryHub's handlers share: settings, stores, search, events. Built once by hub.py.

``open_services`` opens SQL (migrated to head), Redis (the configured URL, or a private embedded
redis-server), and the search engine when enabled (on PostgreSQL with its change feed, so replicas sharing
the database see each other's memories); ``MemoryServices.close`` releases them in reverse.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from bus.events import EventPublisher, NullPublisher
from bus.log import get_logger
from bus.tokens import TokenService

log = get_logger("memory_hub.services")


@dataclass
class MemoryServices:
    settings: dict
    data_dir: Path
    events: EventPublisher | NullPublisher
    tokens: TokenService | None = None
    sql: Any = None          # agents.memory_hub.stores.sql.SqlStore
    redis: Any = None        # agents.memory_hub.stores.redis_store.RedisStore
    search: Any = None       # agents.memory_hub.search.engine.SearchEngine
    registry: Any = None     # prometheus CollectorRegistry for handler metrics
    closers: list[Callable[[], None]] = field(default_factory=list)

    def close(self) -> None:
        for close in reversed(self.closers):
            try:
                close()
            except Exception as exc:
                log.error("close_failed", error=repr(exc))
        self.closers.clear()


def open_services(settings: dict, data_dir: Path, events: EventPublisher | NullPublisher,
                  tokens: TokenService | None = None, registry: Any = None) -> MemoryServices:
    from agents.memory_hub.stores.factory import open_stores

    services = MemoryServices(settings=settings, data_dir=data_dir, events=events, tokens=tokens, registry=registry)
    stores = open_stores(settings, data_dir)
    services.sql, services.redis = stores.sql, stores.redis
    services.closers.append(stores.close)
    try:
        services.search = open_search(services)
    except Exception:
        services.close()
        raise
    return services


def open_search(services: MemoryServices) -> Any:
    section = services.settings.get("search") or {}
    if not section.get("enabled", False):
        log.info("search_disabled", message="semantic search falls back to text search")
        return None
    from agents.memory_hub.search.engine import READY_MARGIN_S, SearchEngine
    # a call without its own deadline waits for the model as long as the hub's default deadline allows
    default_wait_s = max(0.0, services.settings["hub"]["default_deadline_ms"] / 1000 - READY_MARGIN_S)
    engine = SearchEngine(services.sql, settings=section, data_dir=services.data_dir,
                          default_wait_s=default_wait_s)
    services.closers.append(engine.close)
    if services.sql.leadership.postgres:        # replicas may share the database: follow their writes
        from agents.memory_hub.search.change_feed import ChangeFeed
        feed = ChangeFeed(engine, services.sql.url, services.sql.replica)
        feed.start()                            # listens before the index loads, so no write falls between
        services.closers.append(feed.stop)
    engine.start_background()   # the model loads on a thread; rows written meanwhile are embedded before ready
    return engine


def _redact(url: str) -> str:
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        return f"{scheme}://***@{rest.split('@', 1)[1]}"
    return url
