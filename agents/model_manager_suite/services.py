"""What ModelManagerSuite's handlers share: settings, the model core (registry, loader, engine), events.

``open_services`` builds the model core (SQL migrated to head, registry scanned on start, loader with its
device lock) and ``ModelServices.close`` stops it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from bus.events import EventPublisher, NullPublisher
from bus.log import get_logger
from bus.tokens import TokenService

log = get_logger("model_manager_suite.services")


@dataclass
class ModelServices:
    settings: dict
    data_dir: Path
    events: EventPublisher | NullPublisher
    tokens: TokenService | None = None
    core: Any = None         # agents.model_manager_suite.core.ModelCore
    store: Any = None        # core.store (SQL)
    registry: Any = None     # core.registry
    loader: Any = None       # core.loader
    engine: Any = None       # core.engine
    metrics: Any = None      # prometheus CollectorRegistry for handler metrics
    usage_hook: Callable[[str], Any] | None = None   # PredictiveLoader's record_usage, set by that handler
    closers: list[Callable[[], None]] = field(default_factory=list)

    def close(self) -> None:
        for close in reversed(self.closers):
            try:
                close()
            except Exception as exc:
                log.error("close_failed", error=repr(exc))
        self.closers.clear()


def open_services(settings: dict, data_dir: Path, events: EventPublisher | NullPublisher,
                  tokens: TokenService | None = None, metrics: Any = None) -> ModelServices:
    from agents.model_manager_suite.core import open_model_core

    services = ModelServices(settings=settings, data_dir=data_dir, events=events, tokens=tokens, metrics=metrics)
    core = open_model_core(settings, data_dir, events)
    services.core, services.store, services.registry = core, core.store, core.registry
    services.loader, services.engine = core.loader, core.engine
    services.closers.append(core.stop)
    return services
