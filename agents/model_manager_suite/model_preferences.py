"""ModelManagerAgent's domain: model preferences, status summary, task-based selection, STT approvals.

* Preferences: ``model_pref`` ("fast", "quality", ...) maps to a model through the legacy ``llm_config.yaml``
  ``load_policy`` (settings ``models.load_policy``, kept by the loader as aliases, repointed by swaps); a
  model id or display name is accepted too. An unknown preference falls back to "fast" (legacy); if that
  is not mapped either, ``NotFound("No model found for preference: X")``.
* Status: the loaded models with their memory, the main device's budget, the routing policy.
* Selection (legacy ``select_model``): models with the capability (else all), with a context at least
  ``context_size`` (else the largest), loaded ones first, then the smallest that fits the budget.
* STT approvals (legacy ``_process_model_request``): a model of ``model_manager_agent.stt_models``
  (``{id: {vram_estimate_mb, model_path}}``, legacy ``whisper_model_config.models``) is approved when its
  estimate fits the free budget; a registry GGUF model is loaded by the hub. Approvals of external models
  count against the budget until they are unused for ``stt_approval_ttl_s``.
"""
from __future__ import annotations

import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any
from collections.abc import Callable

from bus.errors import BadRequest, Conflict, NotFound

from .budget import BudgetExceeded
from .inference_api import ModelAPI
from .registry import ModelRecord

class ApprovalError(Exception):
    """An STT model request that cannot be approved; ``code`` is the legacy error_code."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code, self.message = code, message


@dataclass
class Approval:
    model_id: str
    vram_mb: float
    quantization_level: str
    priority: int
    approved_at: float
    last_used: float
    model_path: str


class ModelRouter:
    def __init__(self, api: ModelAPI, *, stt_models: dict[str, Any], model_priorities: dict[str, Any],
                 default_priority: int, default_quantization: str, approval_ttl_s: float,
                 clock: Callable[[], float] = time.time):
        self.api = api
        self.stt_models: dict[str, dict] = {str(k): v for k, v in stt_models.items() if isinstance(v, dict)}
        self.priorities = dict(model_priorities)
        self.default_priority = default_priority
        self.default_quantization = default_quantization
        self.approval_ttl = approval_ttl_s
        self.clock = clock
        self._approvals: dict[str, Approval] = {}
        self._lock = threading.Lock()

    # -- preferences ----------------------------------------------------------------------------
    def routing_policy(self) -> dict[str, str]:
        return dict(self.api.loader.aliases)

    def resolve_pref(self, model_pref: str | None) -> str:
        pref = model_pref or "fast"
        for candidate in dict.fromkeys((pref, "fast")):
            try:
                return self.api.resolve(candidate)
            except NotFound:
                continue
        raise NotFound(f"No model found for preference: {pref}")

    def generate(self, model_pref: str | None, prompt: str, *, timeout: float | None = None,
                 **params: Any) -> dict[str, Any]:
        """{"response_text", "model_used", "conversation_id", "using_kv_cache", ...generation figures}."""
        if not isinstance(prompt, str) or not prompt:
            raise BadRequest("Missing 'prompt' field", details={"field": "prompt"})
        model_id = self.resolve_pref(model_pref)
        return _generated(self.api.predict(model_id, prompt=prompt, timeout=timeout, **params))

    def generate_async(self, model_pref: str | None, prompt: str, *, deadline: float | None = None,
                       **params: Any) -> Future[dict[str, Any]]:
        """``generate`` without waiting: a future completed on the model's thread (``deadline``: monotonic)."""
        if not isinstance(prompt, str) or not prompt:
            raise BadRequest("Missing 'prompt' field", details={"field": "prompt"})
        model_id = self.resolve_pref(model_pref)
        generation = self.api.predict_async(model_id, prompt=prompt, deadline=deadline, **params)
        future: Future = Future()

        def settle(done: Future) -> None:
            try:
                future.set_result(_generated(done.result()))
            except BaseException as exc:
                future.set_exception(exc)

        generation.add_done_callback(settle)
        return future

    # -- status ---------------------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        api = self.api
        stats = api.store.all_stats()
        loaded: dict[str, Any] = {}
        for info in api.loader.loaded():
            record = api.registry.get(info["model_id"])
            loaded[info["model_id"]] = {
                "vram_usage_mb": info["reserved_mb"], "device": info["device"],
                "last_used": (stats.get(info["model_id"]) or {}).get("last_used") or info["loaded_at"],
                "is_active": info["in_flight"] > 0, "quantization": record.quantization or "unknown",
                "pinned": info["pinned"]}
        for approval in self.approvals():
            loaded[approval.model_id] = {
                "vram_usage_mb": approval.vram_mb, "device": "external", "last_used": approval.last_used,
                "is_active": True, "quantization": approval.quantization_level, "pinned": False}
        usage = api.memory_usage()
        return {"loaded_models": loaded, "total_models": len(loaded),
                "total_vram_used_mb": round(usage["used_mb"] + self._approved_mb(), 1),
                "total_vram_mb": self._device_total_mb(), "budget_mb": usage["total_mb"],
                "device": api.main_device(), "routing_policy": self.routing_policy()}

    def _device_total_mb(self) -> float:
        api = self.api
        device = api.main_device()
        if device.startswith("cuda"):
            dev = api.loader.budget.gpu.device(int(device.split(":", 1)[1]))
            if dev is not None:
                return round(dev.memory_total_mb, 1)
        return round(api.loader.budget.capacity_mb(device), 1)

    # -- selection ------------------------------------------------------------------------------
    def select_model(self, task_type: str | None, context_size: int | None = None) -> tuple[str, dict] | None:
        api = self.api
        api.ensure_scanned()
        live = {info["model_id"]: info for info in api.loader.loaded()}
        records = api.registry.list(include_invalid=False)
        if not records:
            return None
        entries = {r.id: api.legacy_entry(r, live.get(r.id)) for r in records}
        contexts = {r.id: r.context_length or entries[r.id]["n_ctx"] for r in records}
        capable = {m: e for m, e in entries.items() if task_type and task_type in e["capabilities"]} or entries
        if context_size:
            suitable = {m: e for m, e in capable.items() if contexts[m] >= context_size}
            if not suitable:
                largest = max(capable, key=lambda m: contexts[m])
                suitable = {largest: capable[largest]}
            capable = suitable
        smallest = sorted(capable, key=lambda m: (capable[m]["estimated_vram_mb"], m))
        online = [m for m in smallest if capable[m]["loaded"]]
        free = api.memory_usage()["remaining_mb"]
        fitting = [m for m in smallest if capable[m]["estimated_vram_mb"] <= free]
        chosen = (online or fitting or smallest)[0]
        info = dict(capable[chosen], status="online" if capable[chosen]["loaded"] else "available_not_loaded",
                    context_length=contexts[chosen])
        return chosen, info

    # -- STT approvals --------------------------------------------------------------------------
    def approve(self, model_id: str, quantization_level: str | None = None) -> dict[str, Any]:
        """access_info of an approved model request; ``ApprovalError`` with the legacy error_code."""
        quant = quantization_level or self.default_quantization
        priority = int(self.priorities.get(model_id, self.default_priority))
        conf = self.stt_models.get(model_id)
        if conf is not None:
            return self._approve_external(model_id, conf, quant, priority)
        return self._approve_gguf(model_id, quant, priority)

    def _approve_external(self, model_id: str, conf: dict, quant: str, priority: int) -> dict[str, Any]:
        vram = conf.get("vram_estimate_mb")
        if not isinstance(vram, (int, float)) or isinstance(vram, bool) or vram <= 0:
            raise ApprovalError("UNKNOWN_VRAM", "Could not determine VRAM requirements")
        with self._lock:
            self._expire_locked()
            held = self._approvals.get(model_id)
            usage = self.api.memory_usage()
            others = sum(a.vram_mb for mid, a in self._approvals.items() if mid != model_id)
            if held is None and float(vram) > usage["remaining_mb"] - others:
                raise ApprovalError("INSUFFICIENT_VRAM", "Insufficient VRAM")
            path = conf.get("model_path")
            if not path:
                raise ApprovalError("MODEL_NOT_FOUND", "Model not found")
            now = self.clock()
            self._approvals[model_id] = Approval(model_id, float(vram), quant, priority,
                                                 held.approved_at if held else now, now, str(path))
        self.api.record_usage(model_id)
        return _access_info(str(path), float(vram), quant, priority)

    def _approve_gguf(self, model_id: str, quant: str, priority: int) -> dict[str, Any]:
        api = self.api
        try:
            record: ModelRecord = api.registry.get(api.resolve(model_id))
        except NotFound:
            raise ApprovalError("UNKNOWN_VRAM", "Could not determine VRAM requirements") from None
        if not record.valid:
            if record.reason and record.reason.startswith("file not found"):
                raise ApprovalError("MODEL_NOT_FOUND", "Model not found")
            raise ApprovalError("UNKNOWN_VRAM", f"Could not determine VRAM requirements: {record.reason}")
        try:
            info = api.load(record.id)
        except BudgetExceeded as exc:
            raise ApprovalError("INSUFFICIENT_VRAM", f"Insufficient VRAM: {exc.message}") from None
        except Conflict as exc:
            raise ApprovalError("PROCESSING_ERROR", exc.message) from None
        return _access_info(record.path, float(info["reserved_mb"]), quant, priority)

    def approvals(self) -> list[Approval]:
        with self._lock:
            self._expire_locked()
            return list(self._approvals.values())

    def release(self, model_id: str) -> bool:
        with self._lock:
            return self._approvals.pop(model_id, None) is not None

    def _approved_mb(self) -> float:
        return sum(a.vram_mb for a in self.approvals())

    def _expire_locked(self) -> None:
        if self.approval_ttl <= 0:
            return
        cutoff = self.clock() - self.approval_ttl
        for mid in [m for m, a in self._approvals.items() if a.last_used < cutoff]:
            del self._approvals[mid]


def _access_info(path: str, vram_mb: float, quant: str, priority: int) -> dict[str, Any]:
    return {"message": "MMA approved model loading", "model_path_from_config": path,
            "vram_allocated_mb": round(vram_mb, 1), "quantization_level": quant, "priority": priority}


def _generated(result: dict[str, Any]) -> dict[str, Any]:
    """A generation result as ModelManagerAgent answers it."""
    return {"response_text": result["text"], "model_used": result["model_id"],
            "conversation_id": result["conversation_id"], "using_kv_cache": result["using_kv_cache"],
            "finish_reason": result["finish_reason"], "prompt_tokens": result["prompt_tokens"],
            "completion_tokens": result["completion_tokens"], "tokens_per_s": result["tokens_per_s"]}
