"""Hypothesis strategies derived from the request schemas (``schemas.base.Field``).

``valid_args(schema)`` draws argument maps the schema must accept: every required field, optional ones
present or not, each value within its type, bounds, lengths and choices. ``hostile_args(schema)`` draws maps
keyed by the schema's own field names (and strangers) with arbitrary values. ``json_values`` are
msgpack/JSON-able values.
"""
from __future__ import annotations

import math
from typing import Any

from hypothesis import strategies as st

from schemas.base import ANY, Field, Schema

MAX_COLLECTION = 4
MAX_TEXT = 24

json_scalars = (st.none() | st.booleans() | st.integers(-2**63, 2**64 - 1)
                | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=MAX_TEXT))
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=MAX_COLLECTION)
    | st.dictionaries(st.text(max_size=8), inner, max_size=MAX_COLLECTION),
    max_leaves=12,
)
# what a hostile client can put in a msgpack frame: bytes too, NaN and infinities, huge and negative numbers
hostile_values = st.recursive(
    json_scalars | st.binary(max_size=16) | st.floats() | st.integers(-2**63, 2**64 - 1)
    | st.sampled_from(["", " ", "\x00", "../../etc/passwd", "%s%n", "' OR 1=1 --", "\ud7ff" * 3, "a" * 5000]),
    lambda inner: st.lists(inner, max_size=MAX_COLLECTION)
    | st.dictionaries(st.text(max_size=8) | st.integers(), inner, max_size=MAX_COLLECTION),
    max_leaves=16,
)


def _types(spec: Field) -> tuple:
    return spec.type if isinstance(spec.type, tuple) else (spec.type,)


def _sized(spec: Field, default_max: int) -> tuple[int, int]:
    low = int(spec.min_len or 0)
    high = default_max if spec.max_len is None else min(int(spec.max_len), max(low, default_max))
    return low, max(low, high)


def _number(kind: type, spec: Field) -> st.SearchStrategy:
    if kind is int:                                   # msgpack carries int64 .. uint64
        low = -2**63 if spec.min is None else max(-2**63, math.ceil(spec.min))
        high = 2**64 - 1 if spec.max is None else min(2**64 - 1, math.floor(spec.max))
        return st.integers(min_value=low, max_value=high)
    return st.floats(min_value=spec.min, max_value=spec.max, allow_nan=False, allow_infinity=False)


def value_for(spec: Field) -> st.SearchStrategy:
    """Values the field accepts."""
    if spec.choices is not None:
        return st.sampled_from(list(spec.choices))
    options = []
    for kind in _types(spec):
        if kind is ANY:
            options.append(json_values)
        elif kind is bool:
            options.append(st.booleans())
        elif kind in (int, float):
            options.append(_number(kind, spec))
        elif kind is str:
            options.append(st.text(min_size=_sized(spec, MAX_TEXT)[0], max_size=_sized(spec, MAX_TEXT)[1]))
        elif kind is bytes:
            options.append(st.binary(min_size=_sized(spec, 16)[0], max_size=_sized(spec, 16)[1]))
        elif kind is list:
            item = value_for(spec.item) if spec.item is not None else json_values
            low, high = _sized(spec, MAX_COLLECTION)
            options.append(st.lists(item, min_size=low, max_size=high))
        elif kind is dict:
            low, high = _sized(spec, MAX_COLLECTION)
            options.append(st.dictionaries(st.text(max_size=8), json_values, min_size=low, max_size=high))
    values = st.one_of(options) if options else json_values
    if spec.required or not spec.nullable:          # null means "absent" only for optional nullable fields
        return values.filter(lambda v: v is not None)
    return values


@st.composite
def valid_args(draw: Any, schema: Schema) -> dict:
    args: dict[str, Any] = {}
    for name, spec in schema.fields.items():
        if spec.required or draw(st.booleans()):
            args[name] = draw(value_for(spec))
        elif spec.nullable and draw(st.integers(0, 5)) == 0:
            args[name] = None
    return args


def hostile_args(schema: Schema) -> st.SearchStrategy:
    names = list(schema.fields) or ["x"]
    keys = st.sampled_from(names) | st.text(max_size=8)
    return st.dictionaries(keys, hostile_values, max_size=len(names) + 2)
