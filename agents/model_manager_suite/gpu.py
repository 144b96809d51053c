"""GPU and RAM status: NVML devices when there is a GPU, CPU mode (with the reason) when there is not.

A machine without the NVIDIA driver raises ``NVMLError_LibraryNotFound`` from ``nvmlInit``; that is
the normal CPU mode, reported in ``status()["reason"]``, never an error. NVML is initialised once; a
device query that fails later is reported per device.
"""
from __future__ import annotations

import logging
import threading
from dataclasses import asdict, dataclass
from typing import Any

import psutil

log = logging.getLogger(__name__)
MB = 1024 * 1024


@dataclass
class GpuDevice:
    index: int
    name: str
    memory_total_mb: float
    memory_used_mb: float
    memory_free_mb: float
    utilization_pct: float | None
    temperature_c: float | None

    @property
    def device_id(self) -> str:
        return f"cuda:{self.index}"


class GpuMonitor:
    """Thread-safe NVML wrapper; ``mode`` is ``"gpu"`` or ``"cpu"``."""

    def __init__(self, enabled: bool = True):
        self._lock = threading.Lock()
        self._nvml: Any = None
        self.mode = "cpu"
        self.reason = "GPU support disabled by configuration"
        if enabled:
            self._init_nvml()

    def _init_nvml(self) -> None:
        try:
            import pynvml
        except ImportError:
            self.reason = "nvidia-ml-py (pynvml) is not installed"
            return
        try:
            pynvml.nvmlInit()
            count = pynvml.nvmlDeviceGetCount()
        except pynvml.NVMLError_LibraryNotFound:
            self.reason = "NVIDIA driver library (libnvidia-ml) not found: CPU mode"
            return
        except pynvml.NVMLError as exc:
            self.reason = f"NVML unavailable: {exc}"
            return
        if count == 0:
            self.reason = "NVML found no GPU: CPU mode"
            pynvml.nvmlShutdown()
            return
        self._nvml, self.mode, self.reason = pynvml, "gpu", f"{count} NVIDIA GPU(s) found"

    def devices(self) -> list[GpuDevice]:
        if self._nvml is None:
            return []
        nv = self._nvml
        out = []
        with self._lock:
            for index in range(nv.nvmlDeviceGetCount()):
                try:
                    out.append(self._device(nv, index))
                except nv.NVMLError as exc:
                    log.warning("NVML query of GPU %d failed: %s", index, exc)
        return out

    @staticmethod
    def _device(nv: Any, index: int) -> GpuDevice:
        handle = nv.nvmlDeviceGetHandleByIndex(index)
        name = nv.nvmlDeviceGetName(handle)
        if isinstance(name, bytes):
            name = name.decode(errors="replace")
        mem = nv.nvmlDeviceGetMemoryInfo(handle)
        try:
            util: float | None = float(nv.nvmlDeviceGetUtilizationRates(handle).gpu)
        except nv.NVMLError:
            util = None
        try:
            temp: float | None = float(nv.nvmlDeviceGetTemperature(handle, nv.NVML_TEMPERATURE_GPU))
        except nv.NVMLError:
            temp = None
        return GpuDevice(index=index, name=str(name), memory_total_mb=mem.total / MB, memory_used_mb=mem.used / MB,
                         memory_free_mb=mem.free / MB, utilization_pct=util, temperature_c=temp)

    def device(self, index: int) -> GpuDevice | None:
        for dev in self.devices():
            if dev.index == index:
                return dev
        return None

    @staticmethod
    def ram() -> dict[str, float]:
        vm = psutil.virtual_memory()
        return {"total_mb": vm.total / MB, "available_mb": vm.available / MB, "used_pct": vm.percent}

    def status(self) -> dict[str, Any]:
        """``{"mode", "reason", "devices": [...], "ram": {...}}`` (JSON-able)."""
        return {"mode": self.mode, "reason": self.reason, "devices": [asdict(d) for d in self.devices()],
                "ram": self.ram()}

    def shutdown(self) -> None:
        if self._nvml is not None:
            try:
                self._nvml.nvmlShutdown()
            except self._nvml.NVMLError:
                pass
            self._nvml, self.mode, self.reason = None, "cpu", "NVML shut down"
