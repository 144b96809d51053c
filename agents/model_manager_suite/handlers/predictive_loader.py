"""PredictiveLoader: legacy-protocol.md §3.3 (5617; health 5618 in code, 6617 in YAML).

Legacy main port (JSON, flat fields), replies exactly as the legacy agent:
  {"action": "record_usage", "model_id"}  -> {"status": "success"}
      missing/empty model_id -> {"status": "error", "message": "No model_id provided"}
  {"action": "predict_models"}            -> {"status": "success", "predicted_models": [<= 3 model ids]}
      the legacy heuristic unchanged: usages with now - ts < 3600 s counted per model, ranked by count
      (Python's stable sorted(..., reverse=True): ties keep the order in which models were first recorded)
  {"action": "health_check"}              -> {"status": "HEALTHY", "agent": "PredictiveLoader", "uptime",
                                              "timestamp": "%Y-%m-%d %H:%M:%S"}
  anything else (ping and health too)     -> {"status": "error", "message": "Unknown action: X"}
Legacy health ports (5618, 6617): any message -> the same HEALTHY reply.
Usage is kept in SQL (``model_usage``) and survives restarts.

Native actions (agent "PredictiveLoader"):
  record_usage {model_id}        -> {model_id, was_loaded, outcome: hit|miss|resident|null}
  predict {n=3, at?, last?}      -> {predictions: [{model_id, score, loaded, components}], legacy: [ids]}
  preload {model_id, evict=true} -> {preloaded, already_loaded, model_id, version, device, score, unloaded}
                                    route POST /models/{model_id}/preload; conflict when it cannot fit
  stats                          -> {requests, hits, misses, resident, preloads, wasted, pending, hit_rate,
                                     preload_hit_rate, usage_rows, legacy_top, request_coordinator, ...}
Every model request served by the hub is recorded with ``Preloader.record_usage`` (``hub.py`` hands it to
the ModelAPI, which calls it when a request arrives). The background planner preloads
predicted models within the memory budget and publishes ``model.preloaded`` (agents/model_manager_suite/
preloader.py); prometheus: mms_preload_hits_total, mms_preload_misses_total, mms_preload_wasted_total,
mms_preloads_total.
"""
from __future__ import annotations

import time
from typing import Any

from bus.handler import CallContext, Handler, Route, action
from bus.legacy import LegacyCall, LegacyTable, LegacyVocabulary
from agents.model_manager_suite.preloader import Preloader
from schemas.model_manager_suite import predictive_loader as schema


class PredictiveLoader(Handler):
    name = "PredictiveLoader"
    legacy_ports = (5617,)
    legacy_health_ports = (5618, 6617)
    legacy_vocabulary = LegacyVocabulary(not_an_object="'{type}' object has no attribute 'get'")
    routes = (Route("POST", "/models/{model_id}/preload", "preload"),)

    def __init__(self, preloader: Preloader):
        self.preloader = preloader
        self.started_at = time.time()

    # ------------------------------------------------------------------ native
    @action(schema.RECORD_USAGE, name="record_usage")
    def record_usage_action(self, args: dict, ctx: CallContext) -> dict:
        """Record one request for a model."""
        return self.preloader.record_usage(args["model_id"])

    @action(schema.PREDICT)
    def predict(self, args: dict, ctx: CallContext) -> dict:
        """Learned prediction plus the legacy top 3."""
        preloader = self.preloader
        return {"predictions": preloader.predict(args["n"], args["at"], args["last"]),
                "legacy": preloader.legacy_predictions(args["at"])}

    @action(schema.PRELOAD)
    def preload(self, args: dict, ctx: CallContext) -> dict:
        """Preload a model within the memory budget."""
        return self.preloader.preload(args["model_id"], evict=args["evict"])

    @action(schema.STATS)
    def stats(self, args: dict, ctx: CallContext) -> dict:
        """Hit/miss/waste counters and rates."""
        return self.preloader.stats()

    # ------------------------------------------------------------------ legacy
    def legacy_table(self, call: LegacyCall) -> LegacyTable:
        return LegacyTable({"record_usage": self._legacy_record, "predict_models": self._legacy_predict,
                            "health_check": lambda _r: self.legacy_health(0)})

    def _legacy_record(self, request: dict) -> dict:
        model_id = request.get("model_id")
        if not model_id:
            return {"status": "error", "message": "No model_id provided"}
        if isinstance(model_id, (list, dict)):      # the legacy dict key lookup failed on these
            return {"status": "error", "message": f"unhashable type: '{type(model_id).__name__}'"}
        model_id = str(model_id)
        if len(model_id) > 200:
            return {"status": "error", "message": "model_id is too long (max 200 characters)"}
        self.preloader.record_usage(model_id, source="legacy")
        return {"status": "success"}

    def _legacy_predict(self, request: dict) -> dict:
        return {"status": "success", "predicted_models": self.preloader.legacy_predictions()}

    def legacy_health(self, port: int) -> dict:
        return {"status": "HEALTHY", "agent": "PredictiveLoader", "uptime": time.time() - self.started_at,
                "timestamp": time.strftime("%Y-%m-%d %H:%M:%S")}

    # ------------------------------------------------------------------ lifecycle
    def health_checks(self) -> dict[str, tuple[bool, Any]]:
        rc = self.preloader.notifier.status()
        # the RequestCoordinator is an optional neighbour: its state is reported, never a failed check
        return {"usage_log": (True, "usage in SQL"), "request_coordinator": (True, rc)}

    def start(self) -> None:
        self.preloader.open()
        self.preloader.start()

    def stop(self) -> None:
        self.preloader.stop()
