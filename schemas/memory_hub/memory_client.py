"""Request schemas of MemoryClient's native key/value actions (see the handler's module docstring).

Value size is checked by the domain (``too_large``, limit ``memory_client.max_value_bytes``).
"""
from __future__ import annotations

from schemas.base import ANY, Field, Schema

KEY = Field(str, required=True, min_len=1, max_len=512, doc="the key (any characters, '/' included)")

KV_GET = Schema({"key": KEY}, doc="The value of a key.")
KV_SET = Schema({
    "key": KEY,
    "value": Field(ANY, doc="any msgpack/JSON value (required unless the route body is the bare value)"),
    "body": Field(ANY, doc="route form: a body that is not an object is the value"),
    "ttl": Field(float, min=0.001, doc="seconds until the key expires (default: never)"),
}, doc="Store a value durably (SQL) with a hot copy in Redis; optional ttl in seconds.")
KV_DELETE = Schema({"key": KEY}, doc="Delete a key.")
KV_LIST = Schema({
    "prefix": Field(str, max_len=512, default="", doc="only keys starting with this"),
    "limit": Field((int, str), doc="most keys (capped by memory_client.list_limit); a string from an HTTP query"),
}, doc="Live keys in key order.")
