"""GGUFModelManager: legacy-protocol.md §3.1 (5575; health 5576 in code, 6575 in YAML), plus the model
actions of the native port (7011) and the seed routes.

Legacy main port (JSON, flat fields), declared in ``legacy_table``:
  {"action": "list_models"} -> {"status": "success", "models": [{model_id, display_name, model_path, n_ctx,
      n_gpu_layers, n_threads, verbose, estimated_vram_mb, capabilities, idle_timeout_seconds, loaded,
      last_used?, idle_time?}]}
  {"action": "load_model", "model_id"} -> {"status": "success"|"error", "loaded": bool[, "error"]}
  {"action": "unload_model", "model_id"} -> {"status": "success"|"error", "unloaded": bool[, "error"]}
  {"action": "generate_text", "model_id", "prompt", "system_prompt"?, "max_tokens"=1024, "temperature"=0.7,
   "conversation_id"?} -> {"model_id", "text", "status": "success", "using_kv_cache"} | {"error", "status": "error"}
      (the model text is system_prompt + "\\n\\n" + prompt; the model is loaded on demand)
  {"action": "health_check"} -> {"status": "healthy"|"unhealthy", "llama_cpp_available", "models_loaded",
      "total_models", "vram_usage": {"total_mb", "used_mb", "remaining_mb"}, "kv_caches_count", "timestamp"}
  missing model_id -> {"status": "error", "error": "model_id required"} ("model_id and prompt required" for
  generate_text); any other action -> {"status": "error", "error": "Unknown action: X"}.
Legacy health ports (5576, 6575): any message -> the BaseAgent health reply of "GgufModelManager".

Native actions (agent "GGUFModelManager") and their routes:
  list_models   GET  /models                     {rescan?, include_invalid?} -> {"models": [...], "count"}
  get_model     GET  /models/{model_id}          record + header metadata + estimate + stats + load state
  load_model    POST /models/{model_id}/load     {pin?, priority?, n_ctx?} -> loaded-model info
  unload_model  POST /models/{model_id}/unload   -> {"model_id", "unloaded"}
  model_stats   GET  /models/{model_id}/stats    -> loads, load times, requests, errors, tokens, tokens/s, live state
  swap          POST /models/{model_id}/swap     {to?, n_ctx?} -> info of the model now serving + "previous"
  predict       POST /predict/{model_id}         {prompt | messages, max_tokens, temperature, top_p, stop, seed,
                                                  system_prompt, conversation_id, stream} -> generation result
                (``stream: true`` on the native port: token chunks, then the result)
  gpu_status    GET  /gpu/status                 -> {"gpu": NVML/CPU status, "budget": per-device budget + loaded}
  clear_conversation {conversation_id} -> {"cleared": bool}
Errors: not_found (unknown model), conflict (corrupt file, over the memory budget), bad_request (bad params,
prompt over the context size), busy (the model's queue is full), timeout, unavailable.
"""
from __future__ import annotations

import contextlib
import importlib.util
import time
from dataclasses import dataclass
from typing import Any

from bus.errors import HubError
from bus.handler import CallContext, Handler, Route, action, base_legacy_health
from bus.settings import setting
from agents.model_manager_suite.inference_engine import Generation
from agents.model_manager_suite.inference_api import ModelAPI
from bus.legacy import LegacyAction, LegacyCall, LegacyTable, LegacyVocabulary
from schemas.model_manager_suite import gguf_model_manager as schemas

LEGACY_NAME = "GgufModelManager"   # the name the legacy BaseAgent registered under


@dataclass(frozen=True)
class GGUFModelManagerSettings:
    """Settings section ``gguf_model_manager``."""
    legacy_timeout_s: float = setting(55.0, minimum=0.1)  # legacy generate_text time limit (hub deadline is 60 s)


class GGUFModelManager(Handler):
    name = "GGUFModelManager"
    legacy_ports = (5575,)
    legacy_health_ports = (5576, 6575)
    legacy_vocabulary = LegacyVocabulary(key="error", missing_field="{field} required",
                                         mistyped_field="{field} required", not_an_object="Unknown action: None")
    routes = (
        Route("GET", "/models", "list_models"),
        Route("GET", "/models/{model_id}", "get_model"),
        Route("POST", "/models/{model_id}/load", "load_model"),
        Route("POST", "/models/{model_id}/unload", "unload_model"),
        Route("GET", "/models/{model_id}/stats", "model_stats"),
        Route("POST", "/models/{model_id}/swap", "swap"),
        Route("POST", "/predict/{model_id}", "predict"),
        Route("GET", "/gpu/status", "gpu_status"),
    )

    def __init__(self, api: ModelAPI, settings: GGUFModelManagerSettings):
        self.api = api
        self.legacy_timeout = settings.legacy_timeout_s
        self._started_at = time.time()

    # -- native actions -------------------------------------------------------------------------
    @action(schemas.LIST_MODELS)
    def list_models(self, args: dict, ctx: CallContext) -> dict:
        """Every registered model (files in the model dirs and legacy model_configs)."""
        models = self.api.list_models(rescan=args["rescan"], include_invalid=args["include_invalid"])
        return {"models": models, "count": len(models)}

    @action(schemas.GET_MODEL)
    def get_model(self, args: dict, ctx: CallContext) -> dict:
        """One model with its header metadata, memory estimate, stats and load state."""
        return self.api.get_model(args["model_id"])

    @action(schemas.LOAD_MODEL)
    def load_model(self, args: dict, ctx: CallContext) -> dict:
        """Load a model (pin / priority optional)."""
        return self.api.load(args["model_id"], pin=args["pin"], priority=args["priority"], n_ctx=args["n_ctx"])

    @action(schemas.UNLOAD_MODEL)
    def unload_model(self, args: dict, ctx: CallContext) -> dict:
        """Unload a model."""
        return self.api.unload(args["model_id"])

    @action(schemas.MODEL_STATS)
    def model_stats(self, args: dict, ctx: CallContext) -> dict:
        """Per-model statistics."""
        return self.api.stats(args["model_id"])

    @action(schemas.SWAP)
    def swap(self, args: dict, ctx: CallContext) -> dict:
        """Hot swap one model for another (or reload it from its file)."""
        return self.api.swap(args["model_id"], args["to"], n_ctx=args["n_ctx"])

    @action(schemas.PREDICT, stream=True)
    def predict(self, args: dict, ctx: CallContext) -> Generation:
        """Generate with one model; streams token chunks when asked on the native port.

        Returns the generation's future: the model's thread completes it and the bus answers then, so no
        bus worker waits for the generation; chunks go to ``ctx.stream`` from the model's thread."""
        on_token = ctx.stream if args["stream"] and ctx.stream is not None else None
        return self.api.predict_async(
            args["model_id"], prompt=args["prompt"], messages=args["messages"], on_token=on_token,
            deadline=_deadline(ctx), max_tokens=args["max_tokens"], temperature=args["temperature"],
            top_p=args["top_p"], stop=args["stop"], seed=args["seed"], system_prompt=args["system_prompt"],
            conversation_id=args["conversation_id"])

    @action(schemas.GPU_STATUS)
    def gpu_status(self, args: dict, ctx: CallContext) -> dict:
        """GPU/CPU mode, devices, RAM, budget per device and the loaded models."""
        return self.api.gpu_status()

    @action(schemas.CLEAR_CONVERSATION)
    def clear_conversation(self, args: dict, ctx: CallContext) -> dict:
        """Forget a kept conversation."""
        return {"cleared": self.api.clear_conversation(args["conversation_id"])}

    # -- legacy ---------------------------------------------------------------------------------
    def legacy_table(self, call: LegacyCall) -> LegacyTable:
        return LegacyTable({
            "list_models": self._legacy_list,
            "load_model": LegacyAction(self._legacy_load, required=("model_id",), fields={"model_id": str}),
            "unload_model": LegacyAction(self._legacy_unload, required=("model_id",), fields={"model_id": str}),
            "generate_text": self._legacy_generate,
            "health_check": self._legacy_health_check,
        })

    def _legacy_list(self, request: dict) -> dict:
        return {"status": "success", "models": self.api.legacy_models()}

    def _legacy_load(self, request: dict) -> dict:
        model_id = request["model_id"]
        try:
            self.api.load(model_id)
        except HubError as err:
            return {"status": "error", "loaded": False, "error": err.message}
        return {"status": "success", "loaded": True}

    def _legacy_unload(self, request: dict) -> dict:
        model_id = request["model_id"]
        try:
            unloaded = self.api.unload(model_id)["unloaded"]
        except HubError as err:
            return {"status": "error", "unloaded": False, "error": err.message}
        if not unloaded:
            return {"status": "error", "unloaded": False, "error": f"Model {model_id} is not loaded"}
        return {"status": "success", "unloaded": True}

    def _legacy_generate(self, request: dict) -> dict:
        model_id, prompt = request.get("model_id"), request.get("prompt")
        if not model_id or not prompt or not isinstance(model_id, str):
            return {"status": "error", "error": "model_id and prompt required"}
        try:
            result = self.api.predict(
                model_id, prompt=prompt, timeout=self.legacy_timeout,
                system_prompt=request.get("system_prompt") or None, max_tokens=request.get("max_tokens", 1024),
                temperature=request.get("temperature", 0.7), conversation_id=request.get("conversation_id") or None)
        except HubError as err:
            return {"error": err.message, "status": "error"}
        return {"model_id": result["model_id"], "text": result["text"], "status": "success",
                "using_kv_cache": result["using_kv_cache"]}

    def _legacy_health_check(self, request: dict | None = None) -> dict:
        llama_ok = importlib.util.find_spec("llama_cpp") is not None
        try:
            api = self.api
            reply = {"status": "healthy" if llama_ok else "unhealthy", "llama_cpp_available": llama_ok,
                     "models_loaded": len(api.loader.loaded()), "total_models": len(api.registry.list()),
                     "vram_usage": api.memory_usage(), "kv_caches_count": api.conversations_count(),
                     "timestamp": time.time()}
        except Exception as exc:  # the legacy health_check reported any failure as unhealthy
            return {"status": "unhealthy", "error": str(exc), "timestamp": time.time()}
        if not llama_ok:
            reply["error"] = "llama-cpp-python not available"
        return reply

    def legacy_health(self, port: int) -> dict:
        return base_legacy_health(LEGACY_NAME, self._started_at)

    # -- lifecycle ------------------------------------------------------------------------------
    def health_checks(self) -> dict[str, tuple[bool, Any]]:
        api = self.api
        valid = len(api.registry.list(include_invalid=False))
        return {"models": (True, {"registered": len(api.registry.list()), "valid": valid,
                                  "loaded": len(api.loader.loaded()), "mode": api.loader.budget.gpu.mode})}

    def start(self) -> None:
        with contextlib.suppress(HubError):
            self.api.ensure_scanned()


def _deadline(ctx: CallContext) -> float | None:
    """Stop the model a little before the bus answers ``timeout``, so the client gets the model's reply."""
    return None if ctx.deadline is None else ctx.deadline - 0.25
