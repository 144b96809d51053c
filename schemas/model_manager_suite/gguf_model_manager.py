"""Request schemas of GGUFModelManager's native actions (models, load/unload/swap, predict, GPU status).

Query-string values reach these schemas as strings on HTTP (``GET /models?rescan=true``), so flags accept
``bool`` or the strings ``true/false/1/0/yes/no`` (the handler converts them).
"""
from __future__ import annotations

from schemas.base import Field, Schema

MODEL_ID = Field(str, required=True, min_len=1, max_len=200, doc="model id, legacy load_policy alias or display name")
FLAG = Field((bool, str, int), default=False, doc="true/false (strings accepted from query strings)")
N_CTX = Field((int, str), doc="context size for this load (capped by the model's own context length)")

LIST_MODELS = Schema({
    "rescan": FLAG,
    "include_invalid": Field((bool, str, int), default=True, doc="list files that cannot be loaded, with the reason"),
}, doc="Every registered model with header facts, validity, load state; `rescan` re-reads the model dirs first.")

GET_MODEL = Schema({"model_id": MODEL_ID}, doc="One model: registry record, header metadata, estimate, load state.")

LOAD_MODEL = Schema({
    "model_id": MODEL_ID,
    "pin": Field((bool, str, int), doc="pin (never evicted nor idle-unloaded) or unpin the model"),
    "priority": Field((int, str), doc="eviction priority: a load only evicts models of equal or lower priority"),
    "n_ctx": N_CTX,
}, doc="Load a model (no-op when loaded); evicts idle unpinned models (LRU) when the budget requires.")

UNLOAD_MODEL = Schema({"model_id": MODEL_ID}, doc="Unload a model after its queued requests finish.")

MODEL_STATS = Schema({"model_id": MODEL_ID},
                     doc="Loads, load time, requests, errors, tokens, tokens/s and live state of one model.")

PREDICT = Schema({
    "model_id": MODEL_ID,
    "prompt": Field(str, max_len=1_000_000, doc="completion prompt (or give `messages`)"),
    "messages": Field(list, max_len=1000, item=Field(dict), doc="chat messages [{role, content}]"),
    "system_prompt": Field(str, max_len=100_000),
    "max_tokens": Field((int, str), default=256, doc="1..32768"),
    "temperature": Field((float, str), default=0.7, doc="0..5"),
    "top_p": Field((float, str), default=0.95, doc="(0, 1]"),
    "stop": Field((str, list), doc="stop string or list of at most 16"),
    "seed": Field((int, str)),
    "conversation_id": Field(str, min_len=1, max_len=256, doc="continue (or start) a kept conversation"),
    "stream": FLAG,
}, doc="Generate with one model (completion from `prompt`, chat from `messages`); loads it if needed. "
       "With `stream: true` on the native port, token chunks are streamed before the final result.")

GPU_STATUS = Schema({}, doc="GPU devices (NVML) or CPU mode with its reason, RAM, per-device budget and loaded models.")

SWAP = Schema({
    "model_id": MODEL_ID,
    "to": Field(str, min_len=1, max_len=200, doc="model to swap in; absent: reload `model_id` from its current file"),
    "n_ctx": N_CTX,
}, doc="Hot swap: load `to` while `model_id` keeps serving, repoint its aliases, then unload it.")

CLEAR_CONVERSATION = Schema({"conversation_id": Field(str, required=True, min_len=1, max_len=256)},
                            doc="Forget a kept conversation.")
