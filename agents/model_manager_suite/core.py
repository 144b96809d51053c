"""The model layer of ModelManagerSuite, composed: store, GPU monitor, budget, registry, loader, engine.

``open_model_core(settings, database_url, data_dir, events)`` builds it from the ``models`` section and
the database URL (``hub.py`` passes ``storage.database_url``; empty:
``sqlite:///<data_dir>/model_manager_suite.db``),
migrates the database to head (``migrations/model_manager_suite``), and returns a ``ModelCore``.
``start()`` scans the model dirs and starts the rescan poll and the idle-unload task; ``stop()`` unloads every
model and closes.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .budget import MemoryBudget
from .inference_engine import InferenceEngine
from .gpu import GpuMonitor, offload_check
from .loader import ModelLoader
from .models_settings import ModelsSettings
from .registry import ModelRegistry
from agents.sql_engine import SqlSettings

from .store import STORE_SQL_DEFAULTS, ModelStore, create_store_engine, default_database_url

log = logging.getLogger(__name__)


@dataclass
class ModelCore:
    settings: ModelsSettings
    store: ModelStore
    gpu: GpuMonitor
    budget: MemoryBudget
    registry: ModelRegistry
    loader: ModelLoader
    engine: InferenceEngine

    def start(self) -> None:
        result = self.registry.rescan()
        log.info("model registry: %d models (%d invalid) in %s", len(self.registry.list()),
                 len(result.invalid), [str(d) for d in self.registry.dirs])
        log.info("device mode %s: %s; offload_supported=%s (%s); devices %s", self.gpu.mode, self.gpu.reason,
                 self.gpu.offload_supported, self.gpu.offload_reason,
                 [(d.device_id, d.name, round(d.memory_total_mb), round(d.memory_free_mb)) for d in self.gpu.devices()])
        ok, detail = self.offload_check()
        if not ok:
            log.error("GPU OFFLOAD UNAVAILABLE: %s", detail)
        self.registry.start()
        self.loader.start()

    def stop(self) -> None:
        self.registry.stop()
        self.loader.stop()
        self.gpu.shutdown()
        self.store.engine.dispose()

    def requested_gpu_layers(self) -> int:
        """``n_gpu_layers`` the profile asks for: the default, else the first model config asking for some."""
        if self.settings.n_gpu_layers:
            return self.settings.n_gpu_layers
        for record in self.registry.list():
            if record.config.get("n_gpu_layers"):
                return int(record.config["n_gpu_layers"])
        return 0

    def offload_check(self) -> tuple[bool, Any]:
        ok, message = offload_check(self.requested_gpu_layers(), self.gpu.offload_supported, self.gpu.gpu_present)
        return ok, {"message": message, "mode": self.gpu.mode, "offload_supported": self.gpu.offload_supported}

    def health_checks(self) -> dict[str, tuple[bool, Any]]:
        records = self.registry.list()
        return {
            "model_database": (self.store.ping(), str(self.store.engine.url.render_as_string(hide_password=True))),
            "model_registry": (True, {"models": len(records), "invalid": sum(not r.valid for r in records),
                                      "last_scan": self.registry.last_scan}),
            "model_device": (True, {"mode": self.gpu.mode, "reason": self.gpu.reason,
                                    "loaded": len(self.loader.loaded())}),
            "gpu_offload": self.offload_check(),
        }


def open_model_core(settings: ModelsSettings, database_url: str | None, data_dir: str | Path, events: Any = None,
                    *, sql: SqlSettings = STORE_SQL_DEFAULTS, migrate: bool = True) -> ModelCore:
    """Build the model layer; ``events`` has ``publish(topic, fields)``."""
    data_dir = Path(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    cfg = settings
    url = database_url or default_database_url(data_dir)
    if migrate:
        from migrations.runner import upgrade_to_head

        upgrade_to_head(url, "model_manager_suite")
    store = ModelStore(create_store_engine(url, sql))
    gpu = GpuMonitor()
    budget = MemoryBudget(gpu, cfg)
    registry = ModelRegistry(store, cfg)
    loader = ModelLoader(registry, store, budget, cfg, data_dir=data_dir, publisher=events)
    engine = InferenceEngine(loader, store, cfg)
    return ModelCore(settings=cfg, store=store, gpu=gpu, budget=budget, registry=registry, loader=loader,
                     engine=engine)
