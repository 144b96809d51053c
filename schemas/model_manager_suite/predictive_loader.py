"""Request schemas of PredictiveLoader's native actions (see the handler's module docstring)."""
from __future__ import annotations

from schemas.base import Field, Schema
from schemas.model_manager_suite.query import QuerySchema

MODEL_ID = Field(str, required=True, min_len=1, max_len=200, doc="model id, alias or display name")

RECORD_USAGE = Schema({"model_id": MODEL_ID},
                      doc="Record one request for a model (the hub records its own requests automatically).")

PREDICT = Schema({
    "n": Field(int, default=3, min=1, max=50, doc="how many models"),
    "at": Field(float, min=0, doc="epoch seconds to predict for (default now)"),
    "last": Field(str, min_len=1, max_len=200, doc="the model used last (default: the last recorded)"),
}, doc="Learned prediction (transitions, time of day, frequency, recency) plus the legacy top 3.")

PRELOAD = QuerySchema({
    "model_id": MODEL_ID,
    "evict": Field(bool, default=True,
                   doc="may unload idle, unpinned, lower-scored models to make room (never pinned or busy ones)"),
}, doc="Preload a model now within the memory budget; publishes model.preloaded.")

STATS = Schema({}, doc="Requests, preload hits, misses, wasted preloads, hit rates, pending preloads.")
