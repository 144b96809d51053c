"""Request schemas of GGUFModelManager's native actions (models, load/unload/swap, predict, GPU status).

Query-string values reach these schemas as strings on HTTP (``GET /models?rescan=true``): ``QuerySchema``
turns them into booleans and numbers here, so the handler gets typed values.
"""
from __future__ import annotations

from schemas.base import Field
from schemas.model_manager_suite.query import QuerySchema

MODEL_ID = Field(str, required=True, min_len=1, max_len=200, doc="model id, legacy load_policy alias or display name")
FLAG = Field(bool, default=False, doc="true/false (also 1/0, yes/no, on/off from query strings)")
N_CTX = Field(int, doc="context size for this load (capped by the model's own context length)")

LIST_MODELS = QuerySchema({
    "rescan": FLAG,
    "include_invalid": Field(bool, default=True, doc="list files that cannot be loaded, with the reason"),
}, doc="Every registered model with header facts, validity, load state; `rescan` re-reads the model dirs first.")

GET_MODEL = QuerySchema({"model_id": MODEL_ID},
                        doc="One model: registry record, header metadata, estimate, load state.")

LOAD_MODEL = QuerySchema({
    "model_id": MODEL_ID,
    "pin": Field(bool, doc="pin (never evicted nor idle-unloaded) or unpin the model"),
    "priority": Field(int, doc="eviction priority: a load only evicts models of equal or lower priority"),
    "n_ctx": N_CTX,
}, doc="Load a model (no-op when loaded); evicts idle unpinned models (LRU) when the budget requires.")

UNLOAD_MODEL = QuerySchema({"model_id": MODEL_ID}, doc="Unload a model after its queued requests finish.")

MODEL_STATS = QuerySchema({"model_id": MODEL_ID},
                     doc="Loads, load time, requests, errors, tokens, tokens/s and live state of one model.")

PREDICT = QuerySchema({
    "model_id": MODEL_ID,
    "prompt": Field(str, max_len=1_000_000, doc="completion prompt (or give `messages`)"),
    "messages": Field(list, max_len=1000, item=Field(dict), doc="chat messages [{role, content}]"),
    "system_prompt": Field(str, max_len=100_000),
    "max_tokens": Field(int, default=256, min=1, max=32768),
    "temperature": Field(float, default=0.7, min=0, max=5),
    "top_p": Field(float, default=0.95, min=0, max=1, doc="(0, 1]"),
    "stop": Field((str, list), doc="stop string or list of at most 16"),
    "seed": Field(int),
    "conversation_id": Field(str, min_len=1, max_len=256, doc="continue (or start) a kept conversation"),
    "stream": FLAG,
}, doc="Generate with one model (completion from `prompt`, chat from `messages`); loads it if needed. "
       "With `stream: true` on the native port, token chunks are streamed before the final result.")

GPU_STATUS = QuerySchema({}, doc="GPU devices (NVML) or CPU mode with its reason, RAM, per-device budget and "
                                  "loaded models.")

SWAP = QuerySchema({
    "model_id": MODEL_ID,
    "to": Field(str, min_len=1, max_len=200, doc="model to swap in; absent: reload `model_id` from its current file"),
    "n_ctx": N_CTX,
}, doc="Hot swap: load `to` while `model_id` keeps serving, repoint its aliases, then unload it.")

CLEAR_CONVERSATION = QuerySchema({"conversation_id": Field(str, required=True, min_len=1, max_len=256)},
                            doc="Forget a kept conversation.")
