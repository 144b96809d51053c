"""Memory budget: how much a model will need, how much a device may hold, and what a load really took.

* Capacity: GPU mode = ``vram_fraction`` (legacy 80 %) of the device's memory; CPU mode = ``ram_budget_mb``
  (0 = half the physical RAM).
* Estimate before load = tensor data (the weights; the offloaded share on a GPU) + KV cache
  (2 x n_layer x n_ctx x n_embd_k/v x bytes per element, from the header) + ``overhead_mb``. A legacy
  ``estimated_vram_mb`` (GPU) and the memory measured at an earlier load of the same version, n_ctx and
  device raise the estimate, never lower it.
* Measure after load: RSS delta of this process (CPU) or NVML used-memory delta (GPU).
* Refusal: ``BudgetExceeded`` (a ``bus.errors.Conflict``) naming needed vs free MB.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import psutil

from bus.errors import Conflict

from .defaults import models_settings
from .gpu import MB, GpuMonitor
from .registry import ModelRecord


class BudgetExceeded(Conflict):
    def __init__(self, model_id: str, device: str, needed_mb: float, free_mb: float, capacity_mb: float,
                 evictable_mb: float = 0.0, note: str = ""):
        message = (f"model {model_id} needs {needed_mb:.0f} MB on {device} but only {free_mb:.0f} MB of the "
                   f"{capacity_mb:.0f} MB budget is free")
        if evictable_mb:
            message += f" (evicting idle unpinned models would free {evictable_mb:.0f} MB more)"
        if note:
            message += f"; {note}"
        super().__init__(message, details={
            "model_id": model_id, "device": device, "needed_mb": round(needed_mb, 1), "free_mb": round(free_mb, 1),
            "capacity_mb": round(capacity_mb, 1), "evictable_mb": round(evictable_mb, 1)})
        self.needed_mb, self.free_mb = needed_mb, free_mb


@dataclass
class Estimate:
    model_id: str
    device: str
    n_ctx: int
    weights_mb: float
    kv_cache_mb: float
    overhead_mb: float
    configured_mb: float | None
    measured_mb: float | None
    total_mb: float

    def to_dict(self) -> dict[str, Any]:
        return {k: (round(v, 2) if isinstance(v, float) else v) for k, v in asdict(self).items()}


class MemoryBudget:
    def __init__(self, gpu: GpuMonitor, settings: dict[str, Any] | None = None):
        cfg = models_settings(settings)
        self.gpu = gpu
        self.ram_budget_mb = float(cfg["ram_budget_mb"])
        self.vram_fraction = float(cfg["vram_fraction"])
        self.overhead_mb = float(cfg["overhead_mb"])
        self.kv_bytes = float(cfg["kv_bytes_per_element"])
        self.main_gpu = int(cfg["main_gpu"])

    # -- devices --------------------------------------------------------------------------------
    def device_for(self, n_gpu_layers: int) -> str:
        """``cuda:<main_gpu>`` when a GPU is present and layers are offloaded, else ``cpu``."""
        if self.gpu.mode == "gpu" and n_gpu_layers != 0 and self.gpu.device(self.main_gpu) is not None:
            return f"cuda:{self.main_gpu}"
        return "cpu"

    def capacity_mb(self, device: str) -> float:
        if device == "cpu":
            if self.ram_budget_mb > 0:
                return self.ram_budget_mb
            return psutil.virtual_memory().total / MB * 0.5
        dev = self.gpu.device(_gpu_index(device))
        return dev.memory_total_mb * self.vram_fraction if dev else 0.0

    def free_mb(self, device: str, reserved_mb: float) -> float:
        """Budget left after ``reserved_mb``; on a GPU also bounded by what NVML reports free."""
        free = self.capacity_mb(device) - reserved_mb
        if device != "cpu":
            dev = self.gpu.device(_gpu_index(device))
            free = min(free, dev.memory_free_mb if dev else 0.0)
        return free

    # -- estimate / measure ---------------------------------------------------------------------
    def estimate(self, record: ModelRecord, n_ctx: int, device: str, n_gpu_layers: int = 0,
                 measured: dict[str, Any] | None = None) -> Estimate:
        header = record.header
        weights = float(header.data_size if header and header.data_size else (record.size or 0)) / MB
        kv = header.kv_cache_bytes(n_ctx, self.kv_bytes) / MB if header else 0.0
        if device != "cpu" and header and header.block_count and 0 <= n_gpu_layers < header.block_count:
            share = n_gpu_layers / header.block_count
            weights, kv = weights * share, kv * share
        total = weights + kv + self.overhead_mb
        configured = record.config.get("estimated_vram_mb") if device != "cpu" else None
        if configured:
            total = max(total, float(configured))
        measured_mb = _matching_measurement(record, n_ctx, device, measured)
        if measured_mb is not None:
            total = max(total, measured_mb)
        return Estimate(model_id=record.id, device=device, n_ctx=n_ctx, weights_mb=weights, kv_cache_mb=kv,
                        overhead_mb=self.overhead_mb, configured_mb=float(configured) if configured else None,
                        measured_mb=measured_mb, total_mb=total)

    def snapshot_mb(self, device: str) -> float:
        """Memory in use now: this process's RSS (CPU) or the device's used memory (GPU)."""
        if device == "cpu":
            return psutil.Process().memory_info().rss / MB
        dev = self.gpu.device(_gpu_index(device))
        return dev.memory_used_mb if dev else 0.0


def _gpu_index(device: str) -> int:
    return int(device.split(":", 1)[1]) if ":" in device else 0


def _matching_measurement(record: ModelRecord, n_ctx: int, device: str, row: dict[str, Any] | None) -> float | None:
    if not row or row.get("measured_memory_mb") is None:
        return None
    if (row.get("measured_version"), row.get("measured_n_ctx"), row.get("measured_device")) != \
            (record.version, n_ctx, device):
        return None
    return float(row["measured_memory_mb"])
