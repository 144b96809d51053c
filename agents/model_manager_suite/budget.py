"""Memory budget: how much a model will need, how much a device may hold, and what a load really took.

* Device: ``cuda:<NVML index of main_gpu>`` only in the effective ``gpu`` mode (NVML sees the GPU AND the
  build can offload) with ``n_gpu_layers`` != 0; otherwise ``cpu`` and the weights are charged to RAM.
* Capacity: GPU = ``vram_fraction`` (legacy 80 %) of the device's memory (and never more than NVML reports
  free); CPU = ``ram_budget_mb`` (0 = half the physical RAM).
* Estimate before load = tensor data (the weights; the offloaded share on a GPU) + KV cache
  (2 x n_layer x n_ctx x n_embd_k/v x bytes per element, from the header) + ``overhead_mb``. A legacy
  ``estimated_vram_mb`` (GPU) and the memory measured at an earlier load of the same version, n_ctx and
  device raise the estimate, never lower it. A partially offloaded model's other layers (weights and their
  KV cache) are ``ram_mb``, charged to the RAM budget.
* Partial offload: ``layers_that_fit`` = how many layers fit the VRAM left (plain arithmetic, tested directly).
* Measure after load: RSS delta of this process (CPU); on a GPU the NVML per-process figure where the driver
  lists this process, else the device's used-memory delta.
* Refusal: ``BudgetExceeded`` (a ``bus.errors.Conflict``) naming needed vs free MB.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import psutil

from bus.errors import Conflict

from .models_settings import ModelsSettings
from .gpu import MB, MODE_GPU, GpuMonitor
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
    ram_mb: float = 0.0      # the share that stays in RAM when only some layers are offloaded

    def to_dict(self) -> dict[str, Any]:
        return {k: (round(v, 2) if isinstance(v, float) else v) for k, v in asdict(self).items()}


@dataclass(frozen=True)
class Snapshot:
    device_mb: float             # RSS (CPU) or the device's used memory (GPU)
    process_mb: float | None     # this process's use of the GPU, where the driver reports it


def layers_that_fit(free_mb: float, weights_mb: float, kv_mb: float, overhead_mb: float, block_count: int) -> int:
    """Layers (0..block_count) whose weights + KV cache, plus the overhead, fit in ``free_mb``."""
    if block_count <= 0:
        return 0
    per_layer = (weights_mb + kv_mb) / block_count
    if per_layer <= 0:
        return block_count
    return max(0, min(block_count, int((free_mb - overhead_mb) // per_layer)))


class MemoryBudget:
    def __init__(self, gpu: GpuMonitor, settings: ModelsSettings):
        self.gpu = gpu
        self.ram_budget_mb = settings.ram_budget_mb
        self.vram_fraction = settings.vram_fraction
        self.overhead_mb = settings.overhead_mb
        self.kv_bytes = settings.kv_bytes_per_element
        self.main_gpu = settings.main_gpu

    # -- devices --------------------------------------------------------------------------------
    def device_for(self, n_gpu_layers: int) -> str:
        """``cuda:<NVML index>`` of ``main_gpu`` when this build offloads to a visible GPU and layers are
        asked for; ``cpu`` otherwise (a GPU next to a CPU build holds none of the weights)."""
        if self.gpu.mode != MODE_GPU or n_gpu_layers == 0:
            return "cpu"
        index = self.gpu.nvml_index(self.main_gpu)
        return "cpu" if index is None or self.gpu.device(index) is None else f"cuda:{index}"

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
        ram = 0.0
        if device != "cpu" and header and header.block_count and 0 <= n_gpu_layers < header.block_count:
            share = n_gpu_layers / header.block_count
            ram = (weights + kv) * (1 - share)
            weights, kv = weights * share, kv * share
        total = weights + kv + self.overhead_mb
        configured = record.config.get("estimated_vram_mb") if device != "cpu" else None
        if configured:
            total = max(total, float(configured))
        measured_mb = _matching_measurement(record, n_ctx, placement(device, n_gpu_layers, header), measured)
        if measured_mb is not None:
            total = max(total, measured_mb)
        return Estimate(model_id=record.id, device=device, n_ctx=n_ctx, weights_mb=weights, kv_cache_mb=kv,
                        overhead_mb=self.overhead_mb, configured_mb=float(configured) if configured else None,
                        measured_mb=measured_mb, total_mb=total, ram_mb=ram)

    def snapshot(self, device: str) -> Snapshot:
        """Memory in use now on ``device`` (see ``used_since``)."""
        if device == "cpu":
            rss = psutil.Process().memory_info().rss / MB
            return Snapshot(device_mb=rss, process_mb=rss)
        index = _gpu_index(device)
        dev = self.gpu.device(index)
        return Snapshot(device_mb=dev.memory_used_mb if dev else 0.0, process_mb=self.gpu.process_used_mb(index))

    def used_since(self, device: str, before: Snapshot) -> float:
        """MB taken on ``device`` since ``before``: per process when the driver reports it, else device-wide."""
        after = self.snapshot(device)
        if after.process_mb is not None:
            return max(0.0, after.process_mb - (before.process_mb or 0.0))
        return max(0.0, after.device_mb - before.device_mb)


def placement(device: str, n_gpu_layers: int, header: Any) -> str:
    """Key of a measurement: the device, plus the layer count of a partial offload (``cuda:0/9``)."""
    blocks = header.block_count if header is not None else None
    if device == "cpu" or not blocks or not 0 <= n_gpu_layers < blocks:
        return device
    return f"{device}/{n_gpu_layers}"


def _gpu_index(device: str) -> int:
    return int(device.split(":", 1)[1]) if ":" in device else 0


def _matching_measurement(record: ModelRecord, n_ctx: int, where: str, row: dict[str, Any] | None) -> float | None:
    if not row or row.get("measured_memory_mb") is None:
        return None
    if (row.get("measured_version"), row.get("measured_n_ctx"), row.get("measured_device")) != \
            (record.version, n_ctx, where):
        return None
    return float(row["measured_memory_mb"])
