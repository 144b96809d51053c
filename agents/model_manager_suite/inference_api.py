"""Model operations shared by GGUFModelManager and ModelManagerAgent, native and legacy paths alike.

``hub.py`` builds the one ``ModelAPI`` of the hub and hands it to both handlers, so they share one
inference engine and hence one set of conversations. It wraps the core: ``ModelRegistry`` (what exists),
``ModelLoader`` (load / unload / swap / evict under the device lock) and ``InferenceEngine`` (generation on
each model's own thread). Errors are the core's typed errors: ``NotFound`` (unknown model), ``Conflict``
(corrupt file, over budget), ``BadRequest`` (prompt over the context), ``Busy`` (model queue full),
``Timeout``, ``Unavailable``.

Every model request (load, generation, STT approval) is recorded through ``record_usage(model_id)`` (the
PredictiveLoader's usage log in the hub).
"""
from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any
from collections.abc import Callable

from bus.errors import BadRequest, Conflict

from .inference_engine import Generation, InferenceEngine
from .loader import ModelLoader
from .models_settings import ModelsSettings
from .registry import ModelRecord, ModelRegistry
from .store import ModelStore

log = logging.getLogger(__name__)
LEGACY_CAPABILITIES = ["code-generation"]   # legacy GGUFModelManager default for configured models


class ModelAPI:
    def __init__(self, registry: ModelRegistry, loader: ModelLoader, store: ModelStore, engine: InferenceEngine,
                 settings: ModelsSettings, record_usage: Callable[[str], Any] | None = None):
        self.registry, self.loader, self.store, self.engine = registry, loader, store, engine
        self.settings = settings
        self._record_usage = record_usage
        self.started_at = time.time()

    # -- usage ----------------------------------------------------------------------------------
    def record_usage(self, model_id: str) -> None:
        """Tell the predictive loader a model was requested (never fails the request)."""
        if self._record_usage is None:
            return
        try:
            self._record_usage(model_id)
        except Exception:
            log.exception("usage recording failed for %s", model_id)

    def ensure_scanned(self) -> None:
        if self.registry.last_scan is None:
            self.registry.rescan()

    # -- models ---------------------------------------------------------------------------------
    def resolve(self, name: str) -> str:
        return self.loader.resolve(name)

    def list_models(self, rescan: bool = False, include_invalid: bool = True) -> list[dict[str, Any]]:
        if rescan:
            self.registry.rescan()
        else:
            self.ensure_scanned()
        live = {info["model_id"]: info for info in self.loader.loaded()}
        return [self._describe(r, live.get(r.id)) for r in self.registry.list(include_invalid)]

    def get_model(self, name: str) -> dict[str, Any]:
        record = self.registry.get(self.resolve(name))
        out = self._describe(record, self._live(record.id), with_metadata=True)
        out["estimate"] = self._estimate(record)
        out["stats"] = self.store.get_stats(record.id)
        return out

    def load(self, name: str, *, pin: bool | None = None, priority: int | None = None,
             n_ctx: int | None = None) -> dict[str, Any]:
        model_id = self.resolve(name)
        self.record_usage(model_id)
        return self.loader.load(model_id, pin=pin, priority=priority, n_ctx=n_ctx)

    def unload(self, name: str) -> dict[str, Any]:
        model_id = self.resolve(name)
        self.registry.get(model_id)
        return {"model_id": model_id, "unloaded": self.loader.unload(model_id)}

    def swap(self, name: str, to: str | None = None, *, n_ctx: int | None = None) -> dict[str, Any]:
        if to is not None:
            self.record_usage(self.resolve(to))
        return self.loader.swap(name, to, n_ctx=n_ctx)

    def stats(self, name: str) -> dict[str, Any]:
        return self.engine.stats(self.resolve(name))

    def gpu_status(self) -> dict[str, Any]:
        return {"gpu": self.loader.budget.gpu.status(), "budget": self.loader.status()}

    def is_loaded(self, name: str) -> bool:
        return self.loader.is_loaded(name)

    # -- generation -----------------------------------------------------------------------------
    def predict(self, name: str, *, prompt: str | None = None, messages: list | None = None,
                on_token: Callable[[str], None] | None = None, timeout: float | None = None,
                **params: Any) -> dict[str, Any]:
        """Completion (``prompt``) or chat (``messages``); params: max_tokens, temperature, top_p, stop,
        seed, system_prompt, conversation_id."""
        model_id = self._predict_target(name, prompt, messages)
        if messages is not None:
            return self.engine.chat(model_id, messages, on_token=on_token, timeout=timeout, **params)
        return self.engine.complete(model_id, prompt, on_token=on_token, timeout=timeout, **params)

    def predict_async(self, name: str, *, prompt: str | None = None, messages: list | None = None,
                      on_token: Callable[[str], None] | None = None, deadline: float | None = None,
                      **params: Any) -> Generation:
        """``predict`` without waiting: a future completed on the model's thread (``deadline``: monotonic)."""
        model_id = self._predict_target(name, prompt, messages)
        if messages is not None:
            return self.engine.chat_async(model_id, messages, on_token=on_token, deadline=deadline, **params)
        return self.engine.complete_async(model_id, prompt, on_token=on_token, deadline=deadline, **params)

    def _predict_target(self, name: str, prompt: str | None, messages: list | None) -> str:
        if (prompt is None) == (messages is None):
            raise BadRequest("give exactly one of 'prompt' or 'messages'", details={"field": "prompt"})
        model_id = self.resolve(name)
        self.record_usage(model_id)
        return model_id

    def clear_conversation(self, conversation_id: str) -> bool:
        return self.engine.clear_conversation(conversation_id)

    def conversations_count(self) -> int:
        return len(self.engine.conversations)

    # -- budget ---------------------------------------------------------------------------------
    def main_device(self) -> str:
        return self.loader.budget.device_for(self.settings.n_gpu_layers)

    def memory_usage(self) -> dict[str, float]:
        """Budget of the main device: {total_mb, used_mb, remaining_mb} (RAM budget in CPU mode)."""
        device = self.main_device()
        total = self.loader.budget.capacity_mb(device)
        used = sum(info["reserved_mb"] for info in self.loader.loaded() if info["device"] == device)
        return {"total_mb": round(total, 1), "used_mb": round(used, 1), "remaining_mb": round(total - used, 1)}

    def estimate_mb(self, record: ModelRecord) -> float | None:
        est = self._estimate(record)
        return None if est is None else float(est["total_mb"])

    # -- legacy views ---------------------------------------------------------------------------
    def legacy_entry(self, record: ModelRecord, live: dict[str, Any] | None) -> dict[str, Any]:
        """One model as legacy GGUFModelManager ``list_models`` described it."""
        conf = record.config
        n_ctx = live["n_ctx"] if live else self._n_ctx(record)
        entry: dict[str, Any] = {
            "model_id": record.id,
            "display_name": record.display_name or record.id,
            "model_path": conf.get("model_path") or self._relative_path(record.path),
            "n_ctx": n_ctx,
            "n_gpu_layers": live["n_gpu_layers"] if live else _first(conf.get("n_gpu_layers"),
                                                                    self.settings.n_gpu_layers),
            "n_threads": live["n_threads"] if live else _first(conf.get("n_threads"), self.settings.n_threads),
            "verbose": False,
            "estimated_vram_mb": _round(live["reserved_mb"] if live else (self.estimate_mb(record)
                                                                          or conf.get("estimated_vram_mb") or 0)),
            "capabilities": list(conf.get("capabilities") or (LEGACY_CAPABILITIES if record.source == "config"
                                                              else ["text-generation"])),
            "idle_timeout_seconds": _first(conf.get("idle_timeout_seconds"), self.settings.idle_unload_s),
            "loaded": live is not None,
        }
        last_used = self.store.get_stats(record.id).get("last_used")
        if last_used:
            entry["last_used"] = last_used
            entry["idle_time"] = max(0.0, time.time() - last_used)
        return entry

    def legacy_models(self) -> list[dict[str, Any]]:
        self.ensure_scanned()
        live = {info["model_id"]: info for info in self.loader.loaded()}
        return [self.legacy_entry(r, live.get(r.id)) for r in self.registry.list()]

    # -- internals ------------------------------------------------------------------------------
    def _live(self, model_id: str) -> dict[str, Any] | None:
        for info in self.loader.loaded():
            if info["model_id"] == model_id:
                return info
        return None

    def _describe(self, record: ModelRecord, live: dict[str, Any] | None,
                  with_metadata: bool = False) -> dict[str, Any]:
        out = record.to_dict(with_metadata=with_metadata)
        out["loaded"] = live is not None
        out["loaded_info"] = live
        out["aliases"] = sorted(a for a, mid in dict(self.loader.aliases).items() if mid == record.id)
        return out

    def _estimate(self, record: ModelRecord) -> dict[str, Any] | None:
        if not record.valid:
            return None
        try:
            return self.loader.estimate(record.id)
        except Conflict:
            return None

    def _n_ctx(self, record: ModelRecord) -> int:
        wanted = int(record.config.get("n_ctx") or self.settings.n_ctx)
        return min(wanted, record.context_length) if record.context_length else wanted

    def _relative_path(self, path: str) -> str:
        for base in self.settings.dirs:
            try:
                return str(Path(path).resolve().relative_to(Path(base).expanduser().resolve()))
            except (ValueError, OSError):
                continue
        return path


def _first(*values: Any) -> Any:
    return next((v for v in values if v is not None), None)


def _round(value: Any) -> float:
    return round(float(value or 0), 1)
