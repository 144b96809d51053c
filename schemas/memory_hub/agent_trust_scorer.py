"""Request schemas of AgentTrustScorer's native actions (see the handler's module docstring)."""
from __future__ import annotations

from schemas.base import Field, Schema

MODEL_ID = Field(str, required=True, min_len=1, max_len=128, doc="model or agent id (a caller's `sub`)")

LOG_PERFORMANCE = Schema({
    "model_id": MODEL_ID,
    "success": Field(bool, required=True),
    "response_time": Field(float, default=0.0, min=0.0, max=86400.0, doc="seconds"),
    "error_message": Field(str, max_len=4096),
}, doc="Record one interaction; returns the new score (legacy formula).")

GET_TRUST_SCORE = Schema({"model_id": MODEL_ID}, doc="Score and counters (0.5 and zeros when unknown).")

GET_PERFORMANCE_HISTORY = Schema({
    "model_id": MODEL_ID,
    "limit": Field(int, default=10, min=1, max=1000),
}, doc="Newest interactions first.")

GET_TRUST = Schema({"user_id": Field(str, required=True, min_len=1, max_len=128)},
                   doc="Route form of get_trust_score: GET /trust/{user_id}.")
