"""GPU and RAM status: NVML devices, llama.cpp's offload support, and the effective mode that follows.

A machine without the NVIDIA driver raises ``NVMLError_LibraryNotFound`` from ``nvmlInit``; that is
the normal CPU mode, reported in ``status()["reason"]``, never an error. NVML is initialised once; a
device query that fails later is reported per device.

Two independent facts decide where weights go: NVML sees a GPU (``gpu_present``) and the installed
llama-cpp-python can offload layers (``offload_supported``, from ``llama_supports_gpu_offload()``, which
is False for a CPU build and also for a CUDA build that finds no usable device). The effective mode is
``gpu`` only when both hold; a GPU with a CPU build is ``cpu (GPU present, build without offload)``.

CUDA numbers devices after ``CUDA_VISIBLE_DEVICES`` (``main_gpu`` is such an index), NVML numbers the
physical devices; ``visible_nvml_indices`` maps one to the other, and device ids (``cuda:N``, the budget
and lock file keys) use the NVML index so that every process on the machine names a GPU the same way.
The decision functions here take plain values so they are tested directly.
"""
from __future__ import annotations

import contextlib
import logging
import os
import threading
from dataclasses import asdict, dataclass
from typing import Any

import psutil

log = logging.getLogger(__name__)
MB = 1024 * 1024

MODE_GPU = "gpu"
MODE_CPU = "cpu"
MODE_NO_OFFLOAD = "cpu (GPU present, build without offload)"
OFFLOAD_FIX = "make install GPU=cuda"


@dataclass
class GpuDevice:
    index: int
    name: str
    memory_total_mb: float
    memory_used_mb: float
    memory_free_mb: float
    utilization_pct: float | None
    temperature_c: float | None
    uuid: str = ""

    @property
    def device_id(self) -> str:
        return f"cuda:{self.index}"


# -- decisions on plain values ------------------------------------------------------------------------
def effective_mode(gpu_present: bool, offload_supported: bool) -> str:
    """``gpu`` | ``cpu`` | ``cpu (GPU present, build without offload)``."""
    if gpu_present and offload_supported:
        return MODE_GPU
    return MODE_NO_OFFLOAD if gpu_present else MODE_CPU


def offload_check(requested_layers: int, offload_supported: bool, gpu_present: bool) -> tuple[bool, str]:
    """The ``gpu_offload`` health check: not ok when layers are asked for that this build cannot offload."""
    if requested_layers == 0:
        return True, "no GPU layers requested (n_gpu_layers: 0): models run on the CPU"
    if offload_supported:
        return True, f"n_gpu_layers {requested_layers}: llama.cpp offloads to the GPU"
    where = "an NVIDIA GPU is present but" if gpu_present else "no GPU is visible to NVML and"
    return False, (f"profile asks for n_gpu_layers {requested_layers} but {where} this llama-cpp-python build "
                   f"cannot offload: models run on the CPU and are charged to the RAM budget. "
                   f"Fix: {OFFLOAD_FIX}")


def visible_nvml_indices(cuda_visible_devices: str | None, uuids: list[str]) -> list[int]:
    """NVML index of each CUDA device index (position in the list = CUDA index).

    Follows CUDA's rules: unset = all devices in NVML order; entries are indices or (prefixes of) UUIDs;
    the list stops at the first entry that names no device (so ``""`` or ``-1`` hides every GPU)."""
    if cuda_visible_devices is None:
        return list(range(len(uuids)))
    out: list[int] = []
    for token in (t.strip() for t in cuda_visible_devices.split(",")):
        index = _device_for_token(token, uuids)
        if index is None or index in out:
            break
        out.append(index)
    return out


def _device_for_token(token: str, uuids: list[str]) -> int | None:
    if token.isdigit():
        index = int(token)
        return index if index < len(uuids) else None
    if token.startswith(("GPU-", "MIG-")):
        matches = [i for i, uuid in enumerate(uuids) if uuid.startswith(token)]
        return matches[0] if len(matches) == 1 else None
    return None


def probe_offload() -> tuple[bool, str]:
    """Ask the installed llama-cpp-python whether it can offload layers to a GPU."""
    try:
        import llama_cpp
    except Exception as exc:   # a CUDA build without the driver fails here (libcuda.so.1 missing)
        return False, f"llama_cpp cannot be imported: {exc}"
    try:
        supported = bool(llama_cpp.llama_supports_gpu_offload())
    except Exception as exc:
        return False, f"llama_supports_gpu_offload() failed: {exc}"
    if supported:
        return True, "llama.cpp reports GPU offload support"
    return False, "llama.cpp reports no GPU offload (a CPU build, or a CUDA build that sees no usable GPU)"


class GpuMonitor:
    """Thread-safe NVML wrapper; ``mode`` is the effective mode (see ``effective_mode``).

    ``offload_supported`` None asks llama.cpp; ``cuda_visible_devices`` defaults to the environment."""

    def __init__(self, enabled: bool = True, *, offload_supported: bool | None = None,
                 cuda_visible_devices: str | None = None):
        self._lock = threading.Lock()
        self._nvml: Any = None
        self.gpu_present = False
        self.reason = "GPU support disabled by configuration"
        self.visible: list[int] = []
        if enabled:
            self._init_nvml()
        if offload_supported is None:
            self.offload_supported, self.offload_reason = probe_offload()
        else:
            self.offload_supported, self.offload_reason = offload_supported, "given by the caller"
        if self._nvml is not None:
            env = cuda_visible_devices if cuda_visible_devices is not None else os.environ.get("CUDA_VISIBLE_DEVICES")
            self.visible = visible_nvml_indices(env, [d.uuid for d in self._all_devices()])
            self.gpu_present = bool(self.visible)
            if not self.visible:
                self.reason += f"; none visible (CUDA_VISIBLE_DEVICES={env!r})"
        self.mode = effective_mode(self.gpu_present, self.offload_supported)

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
        self._nvml, self.reason = pynvml, f"{count} NVIDIA GPU(s) found"

    def nvml_index(self, cuda_index: int) -> int | None:
        """NVML index of CUDA device ``cuda_index`` (``main_gpu``), None when it is not visible."""
        return self.visible[cuda_index] if 0 <= cuda_index < len(self.visible) else None

    def devices(self) -> list[GpuDevice]:
        """The GPUs this process may use (``CUDA_VISIBLE_DEVICES`` applied), with NVML indices."""
        return [d for d in self._all_devices() if d.index in self.visible]

    def _all_devices(self) -> list[GpuDevice]:
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
        name, uuid = nv.nvmlDeviceGetName(handle), nv.nvmlDeviceGetUUID(handle)
        mem = nv.nvmlDeviceGetMemoryInfo(handle)
        try:
            util: float | None = float(nv.nvmlDeviceGetUtilizationRates(handle).gpu)
        except nv.NVMLError:
            util = None
        try:
            temp: float | None = float(nv.nvmlDeviceGetTemperature(handle, nv.NVML_TEMPERATURE_GPU))
        except nv.NVMLError:
            temp = None
        return GpuDevice(index=index, name=_text(name), memory_total_mb=mem.total / MB, memory_used_mb=mem.used / MB,
                         memory_free_mb=mem.free / MB, utilization_pct=util, temperature_c=temp, uuid=_text(uuid))

    def device(self, index: int) -> GpuDevice | None:
        for dev in self.devices():
            if dev.index == index:
                return dev
        return None

    def process_used_mb(self, index: int, pid: int | None = None) -> float | None:
        """VRAM this process uses on NVML device ``index``, or None where the driver does not report it."""
        if self._nvml is None:
            return None
        nv, pid = self._nvml, os.getpid() if pid is None else pid
        with self._lock:
            try:
                procs = nv.nvmlDeviceGetComputeRunningProcesses(nv.nvmlDeviceGetHandleByIndex(index))
            except nv.NVMLError:
                return None
        used = [p.usedGpuMemory for p in procs if p.pid == pid]
        if not used or any(u is None for u in used):   # not listed (no context yet, or another PID namespace)
            return None
        return sum(used) / MB

    @staticmethod
    def ram() -> dict[str, float]:
        vm = psutil.virtual_memory()
        return {"total_mb": vm.total / MB, "available_mb": vm.available / MB, "used_pct": vm.percent}

    def status(self) -> dict[str, Any]:
        """``{"mode", "reason", "offload_supported", "offload_reason", "gpu_present", "devices", "ram"}``."""
        return {"mode": self.mode, "reason": self.reason, "offload_supported": self.offload_supported,
                "offload_reason": self.offload_reason, "gpu_present": self.gpu_present,
                "visible_nvml_indices": list(self.visible), "devices": [asdict(d) for d in self.devices()],
                "ram": self.ram()}

    def shutdown(self) -> None:
        if self._nvml is not None:
            with contextlib.suppress(self._nvml.NVMLError):
                self._nvml.nvmlShutdown()
            self._nvml, self.gpu_present, self.visible = None, False, []
            self.mode, self.reason = effective_mode(False, self.offload_supported), "NVML shut down"


def _text(value: Any) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)
