"""What ModelManagerSuite's handlers share: settings, registry, loader, stores, events. Built by hub.py."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from bus.events import EventPublisher, NullPublisher
from bus.tokens import TokenService


@dataclass
class ModelServices:
    settings: dict
    data_dir: Path
    events: EventPublisher | NullPublisher
    tokens: TokenService | None = None
    store: Any = None        # SQL store of the model suite
    registry: Any = None     # agents.model_manager_suite.registry.ModelRegistry
    loader: Any = None       # agents.model_manager_suite.loader.ModelLoader
    metrics: Any = None      # prometheus CollectorRegistry for handler metrics
    closers: list[Callable[[], None]] = field(default_factory=list)

    def close(self) -> None:
        for close in reversed(self.closers):
            close()
        self.closers.clear()
