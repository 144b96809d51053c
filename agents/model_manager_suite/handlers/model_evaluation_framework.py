"""ModelEvaluationFramework: legacy-protocol.md §3.4 (7220; health 7221).

Legacy main port (JSON), replies exactly as the legacy agent (errors: {"status": "error", "message"}):
  {"action": "log_performance_metric", "metric": {agent_name, metric_name, value, timestamp?, context?,
      metric_id?}}                                  -> {"status": "success", "metric_id"}
  {"action": "get_performance_metrics", "agent_name"?, "metric_name"?, "limit"=10}
                                                    -> {"status": "success", "metrics": [{metric_id, agent_name,
                                                        metric_name, value, timestamp, context}]}  newest first
  {"action": "log_model_evaluation", "evaluation": {model_name, cycle_id (UUID), trust_score 0..1, accuracy?,
      f1_score?, avg_latency_ms, evaluation_timestamp?, comparison_data?, evaluation_id?}}
                                                    -> {"status": "success", "evaluation_id"}
  {"action": "get_model_evaluation_scores", "model_name"?, "limit"=10}
                                                    -> {"status": "success", "evaluations": [...]}  newest first
  {"action": "get_stats"}                           -> {"status": "success", "metrics": {performance_logs,
                                                        trust_score_updates, models_tracked}}
  a missing "metric"/"evaluation" key -> message "'metric'" / "'evaluation'" (the legacy KeyError); an
  invalid record -> the pydantic validation message; anything else -> "Unknown action: X";
  a JSON value that is not an object -> "Invalid request format".
Legacy health port 7221: any message -> BaseAgent health + {"status": "ok"|"degraded",
  "agent_specific_metrics": {uptime_sec, performance_logs, trust_score_updates, models_tracked, db_connected,
  perf_count, eval_count, zmq_ready}}.

Native actions (agent "ModelEvaluationFramework"): the five legacy actions with flat fields
(log_performance_metric {agent_name, metric_name, value, ...} -> {metric_id}; get_performance_metrics ->
{metrics}; log_model_evaluation {...} -> {evaluation_id}; get_model_evaluation_scores -> {evaluations};
get_stats -> {metrics}) and the evaluation jobs:
  evaluate {model_id, compare_with?, texts?, prompts?, max_tokens?} -> {eval_id, status: "queued", kind,
      model_id, model_b_id}                         route POST /evaluate/{model_id}  (returns at once)
  eval_status {eval_id}  -> {eval_id, kind, status: queued|running|finished|failed, progress, error, times}
                                                    route GET /evaluate/{eval_id}/status
  eval_results {eval_id} -> status + model id/version/sha256 (+ B's) + params + results (null until finished)
                                                    route GET /evaluate/{eval_id}/results
  eval_list {model_id?, limit=20} -> {evaluations: [status...]}
Jobs run in the background (agents/model_manager_suite/evaluation_jobs.py), persist in SQL and publish
``eval.finished``.
"""
from __future__ import annotations

import time
from typing import Any

from bus.errors import BadRequest, HubError
from bus.handler import CallContext, Handler, Route, action, base_legacy_health
from bus.legacy import LegacyCall, LegacyTable, LegacyVocabulary
from agents.model_manager_suite.eval_runs import ab_item
from agents.model_manager_suite.evaluation import EvaluationRecords
from agents.model_manager_suite.evaluation_jobs import EvalJobs
from schemas.model_manager_suite import model_evaluation_framework as schema


class ModelEvaluationFramework(Handler):
    name = "ModelEvaluationFramework"
    legacy_ports = (7220,)
    legacy_health_ports = (7221,)
    legacy_vocabulary = LegacyVocabulary()
    routes = (
        Route("POST", "/evaluate/{model_id}", "evaluate"),
        Route("GET", "/evaluate/{eval_id}/status", "eval_status"),
        Route("GET", "/evaluate/{eval_id}/results", "eval_results"),
    )

    def __init__(self, jobs: EvalJobs):
        self.jobs = jobs
        self._jobs: EvalJobs | None = jobs      # read by legacy_health
        self.started_at = time.time()

    @property
    def records(self) -> EvaluationRecords:
        return self.jobs.records

    # ------------------------------------------------------------------ native: legacy records
    @action(schema.LOG_PERFORMANCE_METRIC)
    def log_performance_metric(self, args: dict, ctx: CallContext) -> dict:
        """Store one performance metric."""
        return {"metric_id": self.records.log_metric(_present(args))}

    @action(schema.GET_PERFORMANCE_METRICS)
    def get_performance_metrics(self, args: dict, ctx: CallContext) -> dict:
        """Performance metrics, newest first."""
        return {"metrics": self.records.metrics(args["agent_name"], args["metric_name"], args["limit"])}

    @action(schema.LOG_MODEL_EVALUATION)
    def log_model_evaluation(self, args: dict, ctx: CallContext) -> dict:
        """Store one model evaluation score."""
        return {"evaluation_id": self.records.log_evaluation(_present(args))}

    @action(schema.GET_MODEL_EVALUATION_SCORES)
    def get_model_evaluation_scores(self, args: dict, ctx: CallContext) -> dict:
        """Model evaluation scores, newest first."""
        return {"evaluations": self.records.evaluations(args["model_name"], args["limit"])}

    @action(schema.GET_STATS)
    def get_stats(self, args: dict, ctx: CallContext) -> dict:
        """Counters of stored records."""
        return {"metrics": self.records.stats()}

    # ------------------------------------------------------------------ native: jobs
    @action(schema.EVALUATE)
    def evaluate(self, args: dict, ctx: CallContext) -> dict:
        """Queue an evaluation (or A/B) job."""
        params = {k: args[k] for k in ("texts", "prompts", "max_tokens") if args.get(k) is not None}
        if args.get("compare_with"):
            for index, item in enumerate(params.get("prompts", [])):
                ab_item(index, item)
        elif any(not isinstance(p, str) for p in params.get("prompts", [])):
            raise BadRequest("prompts must be strings (the {prompt, reference} form is for A/B jobs)",
                             details={"field": "prompts"})
        return self.jobs.submit(args["model_id"], params, args.get("compare_with"))

    @action(schema.EVAL_STATUS)
    def eval_status(self, args: dict, ctx: CallContext) -> dict:
        """State of a job."""
        return self.jobs.status(args["eval_id"])

    @action(schema.EVAL_RESULTS)
    def eval_results(self, args: dict, ctx: CallContext) -> dict:
        """State and results of a job."""
        return self.jobs.results(args["eval_id"])

    @action(schema.EVAL_LIST)
    def eval_list(self, args: dict, ctx: CallContext) -> dict:
        """Jobs, newest first."""
        return {"evaluations": self.jobs.list(args["model_id"], args["limit"])}

    # ------------------------------------------------------------------ legacy
    def legacy_table(self, call: LegacyCall) -> LegacyTable:
        return LegacyTable({
            "log_performance_metric": lambda r: {"status": "success",
                                                 "metric_id": self.records.log_metric(_key(r, "metric"))},
            "get_performance_metrics": lambda r: {"status": "success", "metrics": self.records.metrics(
                r.get("agent_name"), r.get("metric_name"), r.get("limit", 10))},
            "log_model_evaluation": lambda r: {"status": "success",
                                               "evaluation_id": self.records.log_evaluation(_key(r, "evaluation"))},
            "get_model_evaluation_scores": lambda r: {"status": "success", "evaluations": self.records.evaluations(
                r.get("model_name"), r.get("limit", 10))},
            "get_stats": lambda r: {"status": "success", "metrics": self.records.stats()},
        })

    def legacy_health(self, port: int) -> dict:
        counts, connected = {"performance_logs": 0, "trust_score_updates": 0, "models_tracked": 0}, False
        if self._jobs is not None:
            try:
                counts, connected = self._jobs.records.stats(), True
            except HubError:
                connected = False
        specific = {"uptime_sec": time.time() - self.started_at, **counts, "db_connected": connected,
                    "perf_count": counts["performance_logs"] if connected else -1,
                    "eval_count": counts["trust_score_updates"] if connected else -1, "zmq_ready": True}
        return base_legacy_health(self.name, self.started_at, status="ok" if connected else "degraded",
                                  agent_specific_metrics=specific)

    # ------------------------------------------------------------------ lifecycle
    def health_checks(self) -> dict[str, tuple[bool, Any]]:
        return {"evaluation_db": (self.jobs.records.ping(), "records and jobs in SQL")}

    def start(self) -> None:
        self.jobs.open()
        self.jobs.start()

    def stop(self) -> None:
        self.jobs.stop()


def _present(args: dict) -> dict:
    return {k: v for k, v in args.items() if v is not None}


def _key(request: dict, key: str) -> Any:
    if key not in request:
        raise BadRequest(repr(key))          # the legacy KeyError's str()
    return request[key]
