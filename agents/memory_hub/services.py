"""What MemoryHub's handlers share: settings, stores, search, events. Built once by hub.py."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from bus.events import EventPublisher, NullPublisher
from bus.tokens import TokenService


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
            close()
        self.closers.clear()
