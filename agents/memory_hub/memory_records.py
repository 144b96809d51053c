"""Memory rows as the wire sees them: input checking at the edges, the reply dict, a monotonic clock.

The edges check a memory once and hand ``Memories`` column values it trusts:

* ``memory_values(data, limits, partial=False, defaults=None)``: checks the fields of a
  MemoryOrchestratorService ``MemoryEntry`` given by a client (the legacy actions; a native ``update_data``
  or batch item, which no schema describes) and returns column values. Unknown keys are ignored (the legacy
  pydantic model ignored them, e.g. MemoryClient's ``created_by``). Errors: ``BadRequest`` naming the
  field, ``TooLarge`` for content or metadata over the configured limits (typed: each edge words them).
* ``memory_batch(items, limits, max_batch)``: ``memory_values`` of each item of a batch, errors naming
  ``memories[i].field``; ``memory_ids(ids, max_batch)``: the ids of a batch read, each once.
* ``within_limits(args, limits)``: a native ``add_memory`` already checked by its schema: the checks the
  schema cannot make (configured sizes, a finite ``expires_at``), as column values.
* ``entry_defaults(**overrides)``: the column values of a legacy ``MemoryEntry``'s defaults (a legacy add
  over an existing id writes a whole new entry).
* ``memory_dict(row)``: the legacy ``MemoryEntry`` fields plus ``namespace``, ``session_id``, ``updated_at``.
* ``stamp()``: ``time.time()`` made strictly increasing inside the process, so two writes never share a
  ``created_at``/``updated_at`` (ordering of interactions, version checks of cached rows).
"""
from __future__ import annotations

import json
import logging
import math
import threading
import time
from typing import Any
from collections.abc import Callable, Mapping

from bus.errors import BadRequest, TooLarge
from agents.memory_hub.stores.sql_models import ID_LEN, MEMORY_TIERS, Memory

log = logging.getLogger(__name__)

LEGACY_FIELDS = ("memory_id", "content", "memory_type", "memory_tier", "importance", "access_count",
                 "last_accessed_at", "created_at", "expires_at", "metadata", "tags", "relationships", "parent_id")
EXTRA_FIELDS = ("namespace", "session_id", "updated_at")
MAX_TAGS = 100
MAX_TAG_LEN = 256

_clock_lock = threading.Lock()
_last_stamp = 0.0


def stamp() -> float:
    """Epoch seconds, strictly increasing across calls in this process."""
    global _last_stamp
    with _clock_lock:
        now = time.time()
        _last_stamp = now if now > _last_stamp else _last_stamp + 1e-6
        return _last_stamp


def memory_dict(row: Memory | Mapping[str, Any]) -> dict[str, Any]:
    """The reply form of one memory (legacy ``MemoryEntry.model_dump()`` plus three columns)."""
    get = (lambda k: row.get(k)) if isinstance(row, Mapping) else (lambda k: getattr(row, k))
    out: dict[str, Any] = {}
    for name in LEGACY_FIELDS + EXTRA_FIELDS:
        value = get("meta" if name == "metadata" and not isinstance(row, Mapping) else name)
        if name in ("metadata", "relationships"):
            value = dict(value or {})
        elif name == "tags":
            value = list(value or [])
        out[name] = value
    return out


# --------------------------------------------------------------------------- input checking

def _bad(field: str, message: str) -> BadRequest:
    return BadRequest(message, details={"field": field})


def _number(name: str, value: Any, lo: float | None = None, hi: float | None = None) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise _bad(name, f"{name} must be a number")
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        raise _bad(name, f"{name} must be between {lo} and {hi}")
    return float(value)


def _string(name: str, value: Any, max_len: int = ID_LEN, empty: bool = False) -> str:
    if not isinstance(value, str):
        raise _bad(name, f"{name} must be a string")
    if not value and not empty:
        raise _bad(name, f"{name} must not be empty")
    if len(value) > max_len:
        raise _bad(name, f"{name} is longer than {max_len} characters")
    return value


def check_name(name: str, value: Any, max_len: int = ID_LEN) -> str:
    """A non-empty string of at most ``max_len`` characters (ids, roles, topics)."""
    return _string(name, value, max_len)


def check_content(value: Any, max_bytes: int, name: str = "content") -> str:
    if not isinstance(value, str):
        raise _bad(name, f"{name} must be a string")
    text = value
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > max_bytes:
        raise TooLarge(f"{name} is {size} bytes, over the {max_bytes}-byte limit", details={"field": name})
    return text


def check_json_object(name: str, value: Any, max_bytes: int) -> dict:
    if not isinstance(value, dict):
        raise _bad(name, f"{name} must be an object")
    try:
        size = len(json.dumps(value, separators=(",", ":")).encode())
    except (TypeError, ValueError):
        raise _bad(name, f"{name} must be JSON-serializable") from None
    if size > max_bytes:
        raise TooLarge(f"{name} is {size} bytes, over the {max_bytes}-byte limit", details={"field": name})
    return value


def check_tags(value: Any) -> list[str]:
    if not isinstance(value, list) or len(value) > MAX_TAGS:
        raise _bad("tags", f"tags must be a list of at most {MAX_TAGS} strings")
    return [_string("tags", tag, MAX_TAG_LEN) for tag in value]


def _optional(check: Callable[[str, Any], Any]) -> Callable[[str, Any], Any]:
    return lambda name, value: None if value is None else check(name, value)


def _checkers(limits: Mapping[str, int]) -> dict[str, Callable[[str, Any], Any]]:
    meta_max = int(limits["max_metadata_bytes"])

    def tier(name: str, value: Any) -> str:
        if value not in MEMORY_TIERS:
            raise _bad(name, f"{name} must be one of {', '.join(MEMORY_TIERS)}")
        return value

    def count(name: str, value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise _bad(name, f"{name} must be a non-negative integer")
        return value

    return {
        "memory_id": lambda n, v: _string(n, v),
        "content": lambda n, v: check_content(v, int(limits["max_content_bytes"]), n),
        "memory_type": lambda n, v: _string(n, v, 64),
        "memory_tier": tier,
        "importance": lambda n, v: _number(n, v, 0.0, 1.0),
        "access_count": count,
        "last_accessed_at": _optional(_number),
        "created_at": lambda n, v: _number(n, v),
        "expires_at": _optional(_number),
        "metadata": lambda n, v: check_json_object(n, v, meta_max),
        "tags": lambda n, v: check_tags(v),
        "relationships": lambda n, v: check_json_object(n, v, meta_max),
        "parent_id": _optional(lambda n, v: _string(n, v)),
        "namespace": lambda n, v: _string(n, v),
        "session_id": _optional(lambda n, v: _string(n, v)),
    }


def entry_defaults(**overrides: Any) -> dict[str, Any]:
    """Column values of the fields a legacy ``MemoryEntry`` defaults (fresh containers each call)."""
    return {"memory_type": "general", "memory_tier": "short", "importance": 0.5, "access_count": 0, "meta": {},
            "tags": [], "relationships": {}, "namespace": "default", **overrides}


UPDATABLE = ("content", "memory_type", "memory_tier", "importance", "access_count", "last_accessed_at",
             "created_at", "expires_at", "metadata", "tags", "relationships", "parent_id", "namespace",
             "session_id")
NOT_NULL = ("content", "memory_type", "memory_tier", "importance", "access_count", "created_at", "metadata",
            "tags", "relationships", "namespace")


def memory_values(data: Any, limits: Mapping[str, int], *, partial: bool = False,
                  defaults: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Column values (``metadata`` -> ``meta``) of the known fields of ``data`` over ``defaults``.

    ``partial=False`` (a new memory): ``content`` is required; fields not given keep ``defaults``, else
    the columns' defaults. ``partial=True`` (``update_data``): only the given fields, ``memory_id`` is
    ignored (a row never changes its key).
    """
    if not isinstance(data, dict):
        raise _bad("data", "memory data must be an object")
    if not partial and "content" not in data:
        raise _bad("content", "content is required")
    checkers = _checkers(limits)
    names = UPDATABLE if partial else ("memory_id",) + UPDATABLE
    out: dict[str, Any] = dict(defaults or {})
    for name in names:
        if name not in data:
            continue
        value = data[name]
        if value is None and name in NOT_NULL:
            if name == "content" or partial:
                raise _bad(name, f"{name} must not be null")
            continue                     # a null optional field of a new memory means "default"
        out["meta" if name == "metadata" else name] = checkers[name](name, value)
    return out


def check_batch(field: str, count: int, max_batch: int) -> None:
    """``TooLarge`` naming ``field`` when a batch holds more than ``max_batch`` items."""
    if count > max_batch:
        raise TooLarge(f"{field}: {count} items, over the batch limit of {max_batch}", details={"field": field})


def memory_ids(ids: list[str], max_batch: int) -> list[str]:
    """The ids of a ``batch_get_memories``, each once in request order, at most ``max_batch``."""
    unique = list(dict.fromkeys(ids))
    check_batch("memory_ids", len(unique), max_batch)
    return unique


def memory_batch(items: Any, limits: Mapping[str, int], max_batch: int) -> list[dict[str, Any]]:
    """``memory_values`` of each new memory of a batch (errors name ``memories[i].field``)."""
    if not isinstance(items, list) or not items:
        raise BadRequest("No memories provided.", details={"field": "memories"})
    check_batch("memories", len(items), max_batch)
    checked = []
    for i, item in enumerate(items):
        try:
            checked.append(memory_values(item, limits, defaults=entry_defaults()))
        except (BadRequest, TooLarge) as err:
            field = f"memories[{i}].{err.details.get('field', 'data')}"
            raise type(err)(f"{field}: {err.message}", details={"field": field}) from None
    return checked


def within_limits(args: Mapping[str, Any], limits: Mapping[str, int]) -> dict[str, Any]:
    """Column values of a new memory whose fields its schema checked (absent ones left out): content and
    metadata/relationships sizes against the configured limits, ``expires_at`` finite."""
    meta_max = int(limits["max_metadata_bytes"])
    out = {"meta" if name == "metadata" else name: value for name, value in args.items() if value is not None}
    check_content(out["content"], int(limits["max_content_bytes"]))
    if "expires_at" in out:
        _number("expires_at", out["expires_at"])
    for name in ("metadata", "relationships"):
        column = "meta" if name == "metadata" else name
        if column in out:
            check_json_object(name, out[column], meta_max)
    return {**entry_defaults(), **out}
