"""Request schemas of ModelManagerAgent's native actions (routing by model preference, status, selection)."""
from __future__ import annotations

from schemas.base import Field, Schema

GENERATE = Schema({
    "prompt": Field(str, required=True, max_len=1_000_000),
    "model_pref": Field(str, default="fast", min_len=1, max_len=200,
                        doc="load_policy preference (fast, quality, ...) or a model id"),
    "max_tokens": Field(int, default=256, min=1, max=32768),
    "temperature": Field(float, default=0.7, min=0, max=5),
    "top_p": Field(float, default=0.95, min=0, max=1),
    "stop": Field((str, list)),
    "system_prompt": Field(str, max_len=100_000),
    "conversation_id": Field(str, min_len=1, max_len=256),
}, doc="Generate text with the model the load policy maps `model_pref` to.")

CLEAR_CONVERSATION = Schema({"conversation_id": Field(str, required=True, min_len=1, max_len=256)},
                            doc="Forget a kept conversation.")

STATUS = Schema({}, doc="Loaded models, VRAM/RAM budget use and the routing policy.")

SELECT_MODEL = Schema({
    "task_type": Field(str, max_len=200, doc="capability wanted (e.g. code-generation)"),
    "context_size": Field(int, min=1, max=10_000_000, doc="minimum context length"),
}, doc="The model the legacy selection picks for a task: capable, big enough context, loaded first, smallest.")
