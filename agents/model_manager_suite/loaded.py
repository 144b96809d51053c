"""A loaded model as the loader tracks it, and the chat format chosen for a model file."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .budget import Estimate
from .registry import ModelRecord
from .worker import ModelWorker

# chat format for GGUFs that carry no tokenizer.chat_template (llama-cpp-python would fall back to llama-2)
ARCH_CHAT_FORMATS = {"gemma": "gemma", "gemma2": "gemma", "gemma3": "gemma"}


@dataclass
class LoadedModel:
    record: ModelRecord
    worker: ModelWorker
    device: str
    n_ctx: int
    estimate: Estimate
    reserved_mb: float
    measured_mb: float | None
    loaded_at: float            # wall clock
    load_s: float
    last_used: float            # loader clock (monotonic by default)
    leases: int = 0

    @property
    def model_id(self) -> str:
        return self.record.id

    def info(self) -> dict[str, Any]:
        return {
            "model_id": self.record.id, "version": self.record.version, "device": self.device, "n_ctx": self.n_ctx,
            "n_threads": self.worker.n_threads, "n_gpu_layers": self.worker.n_gpu_layers,
            "loaded_at": self.loaded_at, "load_s": round(self.load_s, 4), "reserved_mb": round(self.reserved_mb, 1),
            "measured_mb": None if self.measured_mb is None else round(self.measured_mb, 1),
            "estimate": self.estimate.to_dict(), "pinned": self.record.pinned, "priority": self.record.priority,
            "in_flight": self.worker.pending, "leases": self.leases,
        }


def chat_format_for(record: ModelRecord) -> str | None:
    """Configured ``chat_format``, else a default for templateless GGUFs of known architectures."""
    configured = record.config.get("chat_format")
    if configured:
        return str(configured)
    header = record.header
    if header is None or "tokenizer.chat_template" in header.metadata:
        return None
    return ARCH_CHAT_FORMATS.get(header.architecture or "")
