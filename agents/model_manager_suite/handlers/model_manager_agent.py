"""ModelManagerAgent: legacy-protocol.md §3.2 (5570; health 5571 in code, 6570 in YAML) plus its native
actions. The legacy replies are built in ``agents/model_manager_suite/model_manager_legacy.py``; the domain (model
preferences, status, selection, STT approvals) is ``agents/model_manager_suite/model_preferences.py``.

Legacy main port (JSON):
  {"action": "generate", "model_pref": "fast", "prompt", "params": {max_tokens=256, temperature=0.7,
   top_p=0.95, batch_mode?, batch_data?}, "conversation_id"?}
      -> {"status": "ok", "response_text", "model_used", "timestamp"[, "conversation_id", "using_kv_cache"]}
      | {"status": "error", "message"} (missing prompt: "Missing 'prompt' field"; never a made-up text)
  {"action": "clear_conversation", "conversation_id"} -> {"status": "ok", "conversation_id", "cleared", "message"}
  {"action": "status"} -> {"status": "ok", "loaded_models", "total_models", "total_vram_used_mb",
      "total_vram_mb", "routing_policy", "health": "ok", "timestamp"}
  {"command": HEALTH_CHECK | LOAD_MODEL{model_name, device, quantization_level} | UNLOAD_MODEL{model_name} |
   GET_LOADED_MODELS_STATUS | SELECT_MODEL{task_type, context_size} | PROCESS{type, ...} | VERIFY_SERVICES}
      -> {"status": "SUCCESS"|"ERROR", "message", ...} (PROCESS: the legacy "success"/"error" replies)
  {"model_id", "request_id", "context": {"quantization_level"}} (STT agents)
      -> {"status": "MODEL_READY", "request_id", "model_id", "access_info": {message, model_path_from_config,
          vram_allocated_mb, quantization_level, priority}, "timestamp"}
      | {"status": "ERROR_LOADING_MODEL", "error_code": MISSING_MODEL_ID|UNKNOWN_VRAM|INSUFFICIENT_VRAM|
          MODEL_NOT_FOUND|PROCESSING_ERROR, "error_message", "request_id", "model_id"?, "timestamp"}
  a request that is not a JSON object -> {"status": "ERROR", "error_message", "timestamp"}
Legacy health ports (5571, 6570) and ping/health/health_check on 5570:
  {"status": "ok"|"error", "details": {"status_message", "uptime_seconds"}}

Native actions (agent "ModelManagerAgent"):
  generate {prompt, model_pref="fast", max_tokens, temperature, top_p, stop, system_prompt, conversation_id}
      -> {response_text, model_used, conversation_id, using_kv_cache, finish_reason, prompt_tokens,
          completion_tokens, tokens_per_s}
  clear_conversation {conversation_id} -> {cleared}
  status -> {loaded_models, total_models, total_vram_used_mb, total_vram_mb, budget_mb, device, routing_policy}
  select_model {task_type?, context_size?} -> {model_id, model_info}
Errors: not_found (no model for the preference), conflict (over budget, unloadable), bad_request, busy, timeout.
"""
from __future__ import annotations

import time
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from bus.errors import HubError, NotFound
from bus.handler import CallContext, Handler, action
from bus.settings import setting
from agents.model_manager_suite.inference_api import ModelAPI
from bus.legacy import LegacyCall, LegacyTable, LegacyVocabulary
from agents.model_manager_suite.model_manager_legacy import ModelManagerLegacy, ResponseCache
from agents.model_manager_suite.model_preferences import ModelRouter
from schemas.model_manager_suite import model_manager_agent as schemas


@dataclass(frozen=True)
class ModelManagerAgentSettings:
    """Settings section ``model_manager_agent``."""
    legacy_timeout_s: float = setting(55.0, minimum=0.1)  # legacy request time limit (hub deadline is 60 s)
    cache_ttl_s: float = setting(3600.0, minimum=0.0)     # PROCESS cache_response / get_cached_response
    max_cache_entries: int = setting(1000, minimum=0)
    machine_label: str = "MainPC"       # `device` of legacy loaded_models (VramOptimizerAgent filters on it)
    stt_models: dict[str, Any] = field(default_factory=dict)  # legacy whisper_model_config.models:
                                                                 # {id: {vram_estimate_mb, model_path}}
    model_priorities: dict[str, Any] = field(default_factory=dict)  # legacy vram_management.model_priorities
    default_model_priority: int = 5
    default_quantization_level: str = "none"
    stt_approval_ttl_s: float = setting(300.0, minimum=0.0)  # an approval of an external model holds budget this long


class ModelManagerAgent(Handler):
    name = "ModelManagerAgent"
    legacy_ports = (5570,)
    legacy_health_ports = (5571, 6570)
    legacy_vocabulary = LegacyVocabulary()

    def __init__(self, api: ModelAPI, settings: ModelManagerAgentSettings):
        self.api = api
        self.router = ModelRouter(api, stt_models=settings.stt_models, model_priorities=settings.model_priorities,
                                  default_priority=settings.default_model_priority,
                                  default_quantization=settings.default_quantization_level,
                                  approval_ttl_s=settings.stt_approval_ttl_s)
        cache = ResponseCache(settings.cache_ttl_s, settings.max_cache_entries)
        self.legacy = ModelManagerLegacy(self.router, self._health_reply, settings.legacy_timeout_s, cache,
                                         settings.machine_label)
        self._started_at = time.time()

    # -- native actions -------------------------------------------------------------------------
    @action(schemas.GENERATE)
    def generate(self, args: dict, ctx: CallContext) -> Future:
        """Generate with the model the load policy maps `model_pref` to (answered when the model's thread
        completes it: no bus worker waits)."""
        return self.router.generate_async(
            args["model_pref"], args["prompt"], deadline=None if ctx.deadline is None else ctx.deadline - 0.25,
            max_tokens=args["max_tokens"], temperature=args["temperature"], top_p=args["top_p"],
            stop=args["stop"], system_prompt=args["system_prompt"], conversation_id=args["conversation_id"])

    @action(schemas.CLEAR_CONVERSATION)
    def clear_conversation(self, args: dict, ctx: CallContext) -> dict:
        """Forget a kept conversation."""
        return {"cleared": self.api.clear_conversation(args["conversation_id"])}

    @action(schemas.STATUS)
    def status(self, args: dict, ctx: CallContext) -> dict:
        """Loaded models, memory budget use, routing policy."""
        return self.router.status()

    @action(schemas.SELECT_MODEL)
    def select_model(self, args: dict, ctx: CallContext) -> dict:
        """The model the legacy selection picks for a task type and context size."""
        chosen = self.router.select_model(args["task_type"], args["context_size"])
        if chosen is None:
            raise NotFound("no valid model is registered")
        return {"model_id": chosen[0], "model_info": chosen[1]}

    # -- legacy ---------------------------------------------------------------------------------
    def legacy_table(self, call: LegacyCall) -> LegacyTable:
        return self.legacy.table()

    def legacy_health(self, port: int) -> dict:
        return self._health_reply()

    def _health_reply(self) -> dict:
        return {"status": "ok", "details": {"status_message": "Agent is operational.",
                                            "uptime_seconds": time.time() - self._started_at}}

    def health_checks(self) -> dict[str, tuple[bool, Any]]:
        try:
            policy = self.router.routing_policy()
        except HubError as err:
            return {"routing": (False, err.message)}
        return {"routing": (True, {"policy": policy, "stt_approvals": len(self.router.approvals())})}
