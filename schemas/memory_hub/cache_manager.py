"""Request schemas of CacheManager's native actions (see the handler's module docstring)."""
from __future__ import annotations

from schemas.base import ANY, Field, Schema

CACHE_TYPE = Field(str, default="default", min_len=1, max_len=128,
                   doc="cache type (nlu_results, model_decisions, context_summaries, tool_responses, memory, ...)")
KEY = Field(str, required=True, min_len=1, max_len=512, doc="entry key inside the type")
VALUE = Field(ANY, required=True, nullable=False, doc="any JSON value (stored as JSON text)")
TTL = Field(float, min=0.001, max=315360000, doc="seconds; default: the type's TTL")
CACHE_KEY = Field(str, required=True, min_len=1, max_len=641, doc="'{cache_type}:{key}' (no ':' = type 'default')")

GET = Schema({"cache_type": CACHE_TYPE, "key": KEY},
             doc="The cached value and seconds left; not_found on a miss. Refreshes the entry's LRU position.")

PUT = Schema({"cache_type": CACHE_TYPE, "key": KEY, "value": VALUE, "ttl": TTL},
             doc="Store a value; evicts the type's least recently used entries past its max_entries.")

INVALIDATE = Schema({"cache_type": CACHE_TYPE, "key": KEY}, doc="Delete one entry; deleted tells whether it existed.")

FLUSH = Schema({"cache_type": Field(str, required=True, min_len=1, max_len=128)},
               doc="Delete every entry of one type; returns how many.")

STATS = Schema({}, doc="Tracked entries, TTL and bound per type; Redis availability.")

CACHE_GET = Schema({"cache_key": CACHE_KEY}, doc="Route GET /cache/{cache_key}.")

CACHE_PUT = Schema({"cache_key": CACHE_KEY, "value": VALUE, "ttl": TTL}, doc="Route PUT /cache/{cache_key}.")

CACHE_DELETE = Schema({"cache_key": CACHE_KEY}, doc="Route DELETE /cache/{cache_key}.")
