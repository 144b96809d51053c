"""Request schemas of ModelEvaluationFramework's native actions (see the handler's module docstring).

Record fields are checked again by the legacy pydantic models (agents/model_manager_suite/evaluation.py),
so a value the legacy agent refused is refused on both paths with the same message.
"""
from __future__ import annotations

from schemas.base import Field, Schema

NAME = Field(str, required=True, min_len=1, max_len=200)
OPT_NAME = Field(str, min_len=1, max_len=200)
LIMIT = Field(int, default=10, min=1, max=10_000)
TIME = Field((str, float), doc="ISO-8601 string or epoch seconds (default now, UTC)")
EVAL_ID = Field(str, required=True, min_len=1, max_len=64, doc="id returned by evaluate")

LOG_PERFORMANCE_METRIC = Schema({
    "agent_name": NAME, "metric_name": NAME, "value": Field(float, required=True),
    "timestamp": TIME, "context": Field(dict, max_len=1000), "metric_id": Field(str, max_len=64, doc="a UUID"),
}, doc="Store one performance metric; returns its metric_id.")

GET_PERFORMANCE_METRICS = Schema({"agent_name": OPT_NAME, "metric_name": OPT_NAME, "limit": LIMIT},
                                 doc="Metrics, newest first.")

LOG_MODEL_EVALUATION = Schema({
    "model_name": NAME, "cycle_id": Field(str, required=True, max_len=64, doc="a UUID"),
    "trust_score": Field(float, required=True, min=0.0, max=1.0),
    "accuracy": Field(float, min=0.0, max=1.0), "f1_score": Field(float, min=0.0, max=1.0),
    "avg_latency_ms": Field(float, required=True, min=0.0), "evaluation_timestamp": TIME,
    "comparison_data": Field(dict, max_len=1000), "evaluation_id": Field(str, max_len=64, doc="a UUID"),
}, doc="Store one model evaluation score; returns its evaluation_id.")

GET_MODEL_EVALUATION_SCORES = Schema({"model_name": OPT_NAME, "limit": LIMIT}, doc="Evaluations, newest first.")

GET_STATS = Schema({}, doc="performance_logs, trust_score_updates, models_tracked (counted in SQL).")

EVALUATE = Schema({
    "model_id": Field(str, required=True, min_len=1, max_len=200, doc="model id, alias or display name"),
    "compare_with": Field(str, min_len=1, max_len=200, doc="a second model: A/B comparison on the prompts"),
    "texts": Field(list, min_len=1, max_len=64, item=Field(str, min_len=1, max_len=20_000),
                   doc="perplexity text set (default: a built-in English set)"),
    "prompts": Field(list, min_len=1, max_len=64, item=Field((str, dict), max_len=20_000),
                     doc="latency prompts; for A/B: strings or {prompt, reference} (default: built-in sets)"),
    "max_tokens": Field(int, min=1, max=256, doc="tokens generated per prompt for latency and tokens/s"),
}, doc="Queue an evaluation job (perplexity, time to first token, tokens/s; or A/B); returns eval_id at once.")

EVAL_STATUS = Schema({"eval_id": EVAL_ID}, doc="queued | running | finished | failed, progress, error.")
EVAL_RESULTS = Schema({"eval_id": EVAL_ID}, doc="Status plus the results (null until finished).")
EVAL_LIST = Schema({"model_id": OPT_NAME, "limit": Field(int, default=20, min=1, max=1000)},
                   doc="Jobs newest first, optionally of one model (as A or B).")

