"""Request schemas of ExperienceTracker's native actions (see the handler's module docstring)."""
from __future__ import annotations

from schemas.base import Field, Schema

EXP_ID = Field(str, required=True, min_len=1, max_len=128, doc="experience id")
CONTENT = Field((str, dict), required=True, min_len=1, max_len=65536, doc="what happened: text or a JSON object")
IMPORTANCE = Field(float, default=0.5, min=0.0, max=1.0)
METADATA = Field(dict, max_len=64, doc="free JSON object")
EXPIRES_AT = Field((str, float), max_len=64, doc="ISO-8601 time or epoch seconds; expired experiences vanish")

TRACK = Schema({
    "content": CONTENT, "importance_score": IMPORTANCE, "metadata": METADATA, "expires_at": EXPIRES_AT,
    "exp_id": Field(str, min_len=1, max_len=128, doc="choose the id (an existing one is replaced)"),
}, doc="Store an experience; returns it with its exp_id.")

GET_EXPERIENCES = Schema({
    "limit": Field(int, default=10, min=1, max=1000),
    "min_importance": Field(float, min=0.0, max=1.0),
}, doc="Live experiences, newest first.")

GET_EXPERIENCE = Schema({"exp_id": EXP_ID}, doc="One experience (route GET /experience/{exp_id}).")

DELETE_EXPERIENCE = Schema({"exp_id": EXP_ID}, doc="Delete one experience (route DELETE /experience/{exp_id}).")

PUT_EXPERIENCE = Schema({
    "exp_id": EXP_ID, "content": CONTENT, "importance_score": IMPORTANCE, "metadata": METADATA,
    "expires_at": EXPIRES_AT,
}, doc="Create or replace the experience with this id (route PUT /experience/{exp_id}).")
