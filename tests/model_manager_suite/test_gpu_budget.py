"""GPU status (CPU mode without NVML is normal) and the memory budget arithmetic."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import psutil

from agents.model_manager_suite.budget import BudgetExceeded, MemoryBudget
from agents.model_manager_suite.hub import SPEC
from agents.model_manager_suite.models_settings import ModelsSettings
from bus.settings import from_mapping
from agents.model_manager_suite.gpu import MB, GpuMonitor
from agents.model_manager_suite.registry import ModelRegistry
from agents.model_manager_suite.store import ModelStore
from bus.daemon import settings_for
from bus.errors import Conflict
from tests.support.tiny_gguf import write_tiny_gguf


def test_cpu_mode_without_nvml_is_not_an_error() -> None:
    gpu = GpuMonitor()
    status = gpu.status()
    json.dumps(status)
    assert status["ram"]["total_mb"] > 0 and 0 < status["ram"]["available_mb"] <= status["ram"]["total_mb"]
    if status["mode"] == "cpu":                     # this machine has no NVIDIA driver
        assert status["devices"] == [] and status["reason"]
    assert GpuMonitor(enabled=False).status()["reason"] == "GPU support disabled by configuration"


def test_ram_budget_default_is_half_of_ram() -> None:
    budget = MemoryBudget(GpuMonitor(enabled=False), ModelsSettings())
    assert abs(budget.capacity_mb("cpu") - psutil.virtual_memory().total / MB / 2) < 1
    assert MemoryBudget(GpuMonitor(enabled=False), ModelsSettings(ram_budget_mb=300.0)).capacity_mb("cpu") == 300
    assert budget.device_for(n_gpu_layers=-1) == "cpu"


def test_estimate_is_weights_plus_kv_cache_plus_overhead(tmp_path: Path, store: ModelStore) -> None:
    write_tiny_gguf(tmp_path / "m" / "x.gguf", n_layer=3, n_embd=64, n_head=4, n_head_kv=2)
    settings = from_mapping(ModelsSettings, {"dirs": [str(tmp_path / "m")], "overhead_mb": 10.0})
    registry = ModelRegistry(store, settings)
    registry.rescan()
    record = registry.get("x")
    budget = MemoryBudget(GpuMonitor(enabled=False), settings)
    est = budget.estimate(record, n_ctx=1000, device="cpu")
    kv_bytes = 2 * 3 * 1000 * (2 * 16) * 2            # K and V, 3 layers, 1000 tokens, 2 kv heads x 16, f16
    assert abs(est.kv_cache_mb - kv_bytes / MB) < 1e-9
    assert abs(est.weights_mb - record.header.data_size / MB) < 1e-9
    assert abs(est.total_mb - (est.weights_mb + est.kv_cache_mb + 10.0)) < 1e-9
    remembered = {"measured_memory_mb": 500.0, "measured_version": record.version, "measured_n_ctx": 1000,
                  "measured_device": "cpu"}
    assert budget.estimate(record, 1000, "cpu", measured=remembered).total_mb == 500.0
    assert budget.estimate(record, 2000, "cpu", measured=remembered).measured_mb is None


def test_budget_exceeded_is_a_conflict_with_numbers() -> None:
    err = BudgetExceeded("big", "cpu", needed_mb=5000, free_mb=1200, capacity_mb=8000, evictable_mb=700)
    assert isinstance(err, Conflict) and err.code == "conflict"
    assert err.message.startswith("model big needs 5000 MB on cpu but only 1200 MB of the 8000 MB budget is free")
    assert "700 MB" in err.message and err.to_wire()["details"]["needed_mb"] == 5000


def test_defaults_load_through_bus_config(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text("models:\n  dirs: [/srv/models]\n  model_configs:\n    - {model_id: m, model_path: m.gguf}\n"
                      "  load_policy: {fast: m}\n  idle_unload_s: 60\n")
    models = settings_for(SPEC, argparse.Namespace(config=str(config), data_dir=None, log_level=None), {}).hub.models
    assert models.dirs == ("/srv/models",) and models.idle_unload_s == 60.0
    assert models.load_policy == {"fast": "m"}
