"""Legacy ModelManagerAgent replies (legacy-protocol.md §3.2): translate the legacy requests into
``ModelRouter`` / ``ModelAPI`` calls and the answers back into the legacy vocabularies.

Dispatch of a request on 5570 (a JSON object), declared by ``table()`` for the hub's legacy adapter:
* ``{"action": ...}``: ``generate``, ``clear_conversation``, ``status`` (status words ``ok``/``error``, key
  ``message``); ``ping``/``health``/``health_check`` get the agent's health reply; others
  ``{"status": "error", "message": "Unknown action: X"}``.
* ``{"command": ...}``: HEALTH_CHECK, LOAD_MODEL, UNLOAD_MODEL, GET_LOADED_MODELS_STATUS, SELECT_MODEL,
  VERIFY_SERVICES -> ``{"status": "SUCCESS"|"ERROR", "message", ...}``; PROCESS{type} answers in the legacy
  ``_process_request`` vocabulary (``success``/``error``, key ``error`` or ``message``).
* anything else: the STT model request ``{model_id, request_id, context{quantization_level}}`` ->
  ``MODEL_READY`` or ``ERROR_LOADING_MODEL`` with error_code.
* a request that makes the loop fail (not an object, ...): ``{"status": "ERROR", "error_message", "timestamp"}``.

In ``loaded_models`` of ``status`` and GET_LOADED_MODELS_STATUS, ``device`` is the machine label
(``model_manager_agent.machine_label``, "MainPC"), as legacy MMA reported the LOAD_MODEL ``device`` it was given;
VramOptimizerAgent keeps only the models whose device is its machine name. The real device ("cpu",
"cuda:0", "external" for an approved STT model) is under ``compute_device``.
"""
from __future__ import annotations

import threading
import time
from collections import OrderedDict
from datetime import datetime
from typing import Any
from collections.abc import Callable

from bus.errors import HubError
from bus.legacy import LegacyTable

from .model_preferences import ApprovalError, ModelRouter


def _utc_now() -> str:
    return datetime.utcnow().isoformat()


class ResponseCache:
    """Legacy PROCESS get_cached_response / cache_response: (model, prompt, system_prompt) -> response."""

    def __init__(self, ttl_s: float = 3600.0, max_entries: int = 1000, clock: Callable[[], float] = time.time):
        self.ttl_s, self.max_entries, self.clock = ttl_s, max(1, max_entries), clock
        self._items: OrderedDict[tuple, tuple[float, Any]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple) -> tuple[bool, Any]:
        with self._lock:
            item = self._items.get(key)
            if item is None or self.clock() - item[0] >= self.ttl_s:
                self._items.pop(key, None)
                return False, None
            return True, item[1]

    def put(self, key: tuple, response: Any) -> None:
        with self._lock:
            self._items[key] = (self.clock(), response)
            self._items.move_to_end(key)
            while len(self._items) > self.max_entries:
                self._items.popitem(last=False)


class ModelManagerLegacy:
    def __init__(self, router: ModelRouter, health: Callable[[], dict], timeout_s: float, cache: ResponseCache,
                 machine_label: str):
        self.router, self.health, self.timeout_s, self.cache = router, health, timeout_s, cache
        self.machine_label = machine_label

    def _labelled(self, loaded: dict[str, dict]) -> dict[str, dict]:
        """Legacy ``loaded_models``: ``device`` = the machine label, the real device as ``compute_device``."""
        return {model_id: {**entry, "device": self.machine_label, "compute_device": entry["device"]}
                for model_id, entry in loaded.items()}

    def table(self) -> LegacyTable:
        """``{"action"}`` requests by name (unknown: the handler's vocabulary, "Unknown action: X"); a request
        without an action is a command or a model request; any failure is the request loop's reply."""
        def health(_request: dict) -> dict:
            return self.health()

        return LegacyTable({"generate": self.generate, "clear_conversation": self.clear_conversation,
                            "status": lambda _request: self.status(),
                            "ping": health, "health": health, "health_check": health},
                           errors=((Exception, loop_failure),), without_action=self.command_or_model_request,
                           not_an_object=lambda request: loop_failure(
                               TypeError(f"request must be a JSON object, not {type(request).__name__}")))

    def command_or_model_request(self, request: dict) -> dict:
        if request.get("command"):
            return self._command(request)
        return self.model_request(request)

    # -- {"action": ...} ------------------------------------------------------------------------

    def generate(self, request: dict) -> dict:
        prompt = request.get("prompt")
        if not prompt or not isinstance(prompt, str):
            return {"status": "error", "message": "Missing 'prompt' field"}
        params = request.get("params") or {}
        if not isinstance(params, dict):
            return {"status": "error", "message": "'params' must be an object"}
        conversation_id = request.get("conversation_id") or None
        gen = {"max_tokens": params.get("max_tokens", 256), "temperature": params.get("temperature", 0.7),
               "top_p": params.get("top_p", 0.95), "stop": params.get("stop"),
               "system_prompt": params.get("system_prompt") or None}
        try:
            if params.get("batch_mode") and params.get("batch_data"):
                return self._generate_batch(request.get("model_pref"), params["batch_data"], gen)
            result = self.router.generate(request.get("model_pref"), prompt, timeout=self.timeout_s,
                                          conversation_id=conversation_id, **gen)
        except HubError as err:
            return {"status": "error", "message": err.message}
        reply = {"status": "ok", "response_text": result["response_text"], "model_used": result["model_used"],
                 "timestamp": time.time()}
        if conversation_id:
            reply.update(conversation_id=conversation_id, using_kv_cache=result["using_kv_cache"])
        return reply

    def _generate_batch(self, model_pref: Any, batch: Any, gen: dict) -> dict:
        if not isinstance(batch, list) or len(batch) > 64:
            return {"status": "error", "message": "'batch_data' must be a list of at most 64 prompts"}
        texts, model_used = [], None
        for item in batch:
            prompt = item.get("prompt") if isinstance(item, dict) else item
            result = self.router.generate(model_pref, prompt, timeout=self.timeout_s, **gen)
            texts.append(result["response_text"])
            model_used = result["model_used"]
        return {"status": "ok", "response_text": texts[0] if texts else "", "responses": texts,
                "model_used": model_used, "timestamp": time.time()}

    def clear_conversation(self, request: dict) -> dict:
        conversation_id = request.get("conversation_id")
        if not conversation_id or not isinstance(conversation_id, str):
            return {"status": "error", "message": "Missing 'conversation_id' field"}
        cleared = self.router.api.clear_conversation(conversation_id)
        return {"status": "ok", "conversation_id": conversation_id, "cleared": cleared,
                "message": f"Conversation {conversation_id} {'cleared' if cleared else 'not found'}"}

    def status(self) -> dict:
        try:
            summary = self.router.status()
        except HubError as err:
            return {"status": "error", "message": f"Failed to get status: {err.message}"}
        return {"status": "ok", "loaded_models": self._labelled(summary["loaded_models"]),
                "total_models": summary["total_models"],
                "total_vram_used_mb": summary["total_vram_used_mb"], "total_vram_mb": summary["total_vram_mb"],
                "routing_policy": summary["routing_policy"], "health": "ok", "timestamp": time.time()}

    # -- {"command": ...} -----------------------------------------------------------------------
    def _command(self, request: dict) -> dict:
        command = request["command"]
        handlers: dict[str, Callable[[dict], dict]] = {
            "HEALTH_CHECK": self._health_check, "LOAD_MODEL": self._load_model, "UNLOAD_MODEL": self._unload_model,
            "GET_LOADED_MODELS_STATUS": self._loaded_status, "SELECT_MODEL": self._select_model,
            "PROCESS": self._process, "VERIFY_SERVICES": self._verify_services}
        handler = handlers.get(command) if isinstance(command, str) else None
        if handler is None:
            return {"status": "ERROR", "message": f"Unknown command: {command}"}
        try:
            return handler(request)
        except HubError as err:
            return {"status": "ERROR", "message": err.message}
        except Exception as exc:  # legacy handle_request: {"status": "ERROR", "message": str(e)}
            return {"status": "ERROR", "message": str(exc)}

    def _health_check(self, request: dict) -> dict:
        summary = self.router.status()
        usage = self.router.api.memory_usage()
        return {"status": "SUCCESS", "message": "ModelManagerAgent is healthy",
                "models": self._model_states(), "loaded_models": sorted(summary["loaded_models"]),
                "vram_usage": _budget_view(usage), "timestamp": time.time()}

    def _load_model(self, request: dict) -> dict:
        name = request.get("model_name")
        if not name or not isinstance(name, str):
            return {"status": "ERROR", "message": "Missing model_name parameter"}
        api = self.router.api
        try:
            model_id = api.resolve(name)
            api.registry.get(model_id)
        except HubError:
            return {"status": "ERROR", "message": f"Model {name} not found in registry"}
        if api.is_loaded(model_id):
            return {"status": "SUCCESS", "message": f"Model {name} already loaded"}
        info = api.load(model_id)
        return {"status": "SUCCESS", "message": f"Model {name} loaded successfully", "model_id": model_id,
                "device": info["device"], "requested_device": request.get("device", "MainPC"),
                "quantization_level": request.get("quantization_level", "FP32"), "vram_usage_mb": info["reserved_mb"]}

    def _unload_model(self, request: dict) -> dict:
        name = request.get("model_name")
        if not name or not isinstance(name, str):
            return {"status": "ERROR", "message": "Missing model_name parameter"}
        if self.router.release(name):
            return {"status": "SUCCESS", "message": f"Model {name} unloaded successfully"}
        try:
            unloaded = self.router.api.unload(name)["unloaded"]
        except HubError:
            unloaded = False
        if not unloaded:
            return {"status": "SUCCESS", "message": f"Model {name} not loaded"}
        return {"status": "SUCCESS", "message": f"Model {name} unloaded successfully"}

    def _loaded_status(self, request: dict) -> dict:
        summary = self.router.status()
        return {"status": "SUCCESS", "message": f"{summary['total_models']} model(s) loaded",
                "loaded_models": self._labelled(summary["loaded_models"]), "total_models": summary["total_models"],
                "total_vram_used_mb": summary["total_vram_used_mb"], "total_vram_mb": summary["total_vram_mb"]}

    def _select_model(self, request: dict) -> dict:
        task_type, context_size = request.get("task_type"), request.get("context_size")
        if context_size is not None and (not isinstance(context_size, int) or isinstance(context_size, bool)):
            return {"status": "ERROR", "message": "context_size must be an integer"}
        chosen = self.router.select_model(task_type if isinstance(task_type, str) else None, context_size)
        if chosen is None:
            return {"status": "ERROR", "message": f"No suitable models found for task type '{task_type}'"}
        model_id, info = chosen
        return {"status": "SUCCESS", "message": f"Selected model '{model_id}' for task type '{task_type}'",
                "model_id": model_id, "model_info": info}

    def _verify_services(self, request: dict) -> dict:
        return {"status": "SUCCESS", "message": "PC2 services integration is disabled: 0/0 services healthy",
                "services": {}}

    # -- PROCESS{type} --------------------------------------------------------------------------
    def _process(self, request: dict) -> dict:
        kind = request.get("type", "")
        request_id = request.get("request_id", "N/A")
        handlers: dict[str, Callable[[dict], dict]] = {
            "load_model": self._p_load, "unload_model": self._p_unload, "get_model_status": self._p_model_status,
            "get_all_models": self._p_all_models, "get_memory_status": self._p_memory,
            "health_check": self._p_health, "get_cached_response": self._p_cached, "cache_response": self._p_cache}
        handler = handlers.get(kind) if isinstance(kind, str) else None
        if handler is None:
            return {"status": "error", "message": f"Unknown request type: {kind}", "request_id": request_id}
        return handler(request)

    def _p_name(self, request: dict) -> str | None:
        name = request.get("model_name") or request.get("model_id") or request.get("model")
        return name if isinstance(name, str) and name else None

    def _p_load(self, request: dict) -> dict:
        name = self._p_name(request)
        if name is None:
            return {"status": "error", "error": "Missing model_name parameter"}
        try:
            self.router.api.load(name)
        except HubError as err:
            return {"status": "error", "error": f"Failed to load model {name}: {err.message}", "model_status": "error"}
        return {"status": "success", "message": f"Model {name} loaded successfully", "model_status": "online"}

    def _p_unload(self, request: dict) -> dict:
        name = self._p_name(request)
        if name is None:
            return {"status": "error", "error": "Missing model_name parameter"}
        try:
            unloaded = self.router.api.unload(name)["unloaded"]
        except HubError as err:
            return {"status": "error", "error": f"Failed to unload model {name}: {err.message}",
                    "model_status": "error"}
        if not unloaded:
            return {"status": "success", "message": f"Model {name} is not loaded", "model_status": "unloaded"}
        return {"status": "success", "message": f"Model {name} unloaded successfully or was already unloaded",
                "model_status": "available_not_loaded"}

    def _p_model_status(self, request: dict) -> dict:
        name = self._p_name(request)
        if name is None:
            return {"status": "error", "error": "Missing model_name parameter"}
        entry = self._model_table().get(name)
        if entry is None:
            try:
                entry = self._model_table().get(self.router.api.resolve(name))
            except HubError:
                entry = None
        if entry is None:
            return {"status": "error", "error": f"Unknown model: {name}"}
        return {"status": "success", "model_name": name, **entry}

    def _p_all_models(self, request: dict) -> dict:
        return {"status": "success", "models": self._model_table()}

    def _p_memory(self, request: dict) -> dict:
        api = self.router.api
        device = api.main_device()
        usage = api.memory_usage()
        loaded = {i["model_id"]: i["reserved_mb"] for i in api.loader.loaded()}
        used = usage["used_mb"]
        return {"status": "success", "device": "cuda" if device.startswith("cuda") else "cpu",
                "message": "GPU memory budget" if device.startswith("cuda") else "CPU mode: figures are the RAM budget",
                "total_gpu_memory_mb": self.router.status()["total_vram_mb"], "vram_budget_mb": usage["total_mb"],
                "mma_estimated_used_vram_mb": used, "mma_estimated_free_vram_mb_in_budget": usage["remaining_mb"],
                "usage_percent_of_budget": round(100 * used / usage["total_mb"], 1) if usage["total_mb"] else 0,
                "loaded_model_instances": loaded}

    def _p_health(self, request: dict) -> dict:
        summary = self.router.status()
        return {"status": "ok", "message": "Agent is healthy. Full check performed.",
                "details": {"models": self._model_states(), "loaded_models": sorted(summary["loaded_models"]),
                            "vram_usage": _budget_view(self.router.api.memory_usage())},
                "request_id_received": request.get("request_id", "N/A"), "timestamp": time.time()}

    def _p_cached(self, request: dict) -> dict:
        hit, response = self.cache.get(_cache_key(request))
        reply = {"status": "success", "cached": hit, "request_id": request.get("request_id", "N/A")}
        if hit:
            reply["response"] = response
        return reply

    def _p_cache(self, request: dict) -> dict:
        self.cache.put(_cache_key(request), request.get("response"))
        return {"status": "success", "message": "Response cached", "request_id": request.get("request_id", "N/A")}

    def _model_table(self) -> dict[str, dict]:
        api = self.router.api
        stats = api.store.all_stats()
        table = {}
        for entry in api.legacy_models():
            mid = entry["model_id"]
            info = {**entry, "serving_method": "gguf_direct",
                    "status": "online" if entry["loaded"] else "available_not_loaded"}
            table[mid] = {"model_info": info, "is_loaded": entry["loaded"],
                          "current_memory_usage_mb": entry["estimated_vram_mb"] if entry["loaded"] else 0,
                          "last_used_timestamp": (stats.get(mid) or {}).get("last_used") or 0}
        return table

    def _model_states(self) -> dict[str, str]:
        return {mid: row["model_info"]["status"] for mid, row in self._model_table().items()}

    # -- STT-style model request ----------------------------------------------------------------
    def model_request(self, request: dict) -> dict:
        model_id, request_id = request.get("model_id"), request.get("request_id")
        context = request.get("context") or {}
        if not model_id or not isinstance(model_id, str):
            return {"status": "ERROR_LOADING_MODEL", "request_id": request_id, "error_message": "No model_id provided",
                    "error_code": "MISSING_MODEL_ID", "timestamp": _utc_now()}
        try:
            quant = context.get("quantization_level") if isinstance(context, dict) else None
            access = self.router.approve(model_id, quant)
        except ApprovalError as err:
            return _load_error(request_id, model_id, err.code, err.message)
        except Exception as exc:
            return _load_error(request_id, model_id, "PROCESSING_ERROR", str(exc))
        return {"status": "MODEL_READY", "request_id": request_id, "model_id": model_id, "access_info": access,
                "timestamp": _utc_now()}


def loop_failure(exc: BaseException) -> dict:
    """What the legacy request loop answered for any failure."""
    return {"status": "ERROR", "error_message": str(exc), "timestamp": _utc_now()}


def _load_error(request_id: Any, model_id: str, code: str, message: str) -> dict:
    return {"status": "ERROR_LOADING_MODEL", "request_id": request_id, "model_id": model_id,
            "error_message": message, "error_code": code, "timestamp": _utc_now()}


def _budget_view(usage: dict[str, float]) -> dict[str, float]:
    return {"total_budget_mb": usage["total_mb"], "used_mb": usage["used_mb"], "remaining_mb": usage["remaining_mb"]}


def _cache_key(request: dict) -> tuple:
    return (str(request.get("model")), str(request.get("prompt")), str(request.get("system_prompt", "")))
