"""A small, explicit request-schema language validated at the bus edge.

A ``Schema`` maps field names to ``Field`` specs. ``Schema.validate(args)`` returns a new dict with
defaults filled in, or raises ``BadRequest`` naming the offending field. Unknown fields are refused
unless the schema says ``extra=True``. Values that arrived as text (an HTTP path or query string, named in
``text_fields``) are first parsed as their field's type (``"5"`` -> 5, ``"true"`` -> True, ``"a,b"`` -> a
list), then checked exactly like msgpack or JSON values. ``Schema.describe()`` gives a JSON-able description used by
the ``hub/actions`` table.

    PUT = Schema({
        "key": Field(str, required=True, max_len=512),
        "value": Field(ANY),
        "ttl": Field(int, min=1, max=30 * 86400),
    })
"""
from __future__ import annotations

import builtins
import math
from collections.abc import Collection
from dataclasses import dataclass, field as dc_field
from typing import Any

from bus.errors import BadRequest

ANY = object  # marker: any msgpack/JSON value
_MISSING = object()

_TYPE_NAMES = {str: "string", int: "integer", float: "number", bool: "boolean", dict: "object", list: "array",
               ANY: "any", bytes: "bytes"}


@dataclass(frozen=True)
class Field:
    type: type | tuple[type, ...] = ANY
    required: bool = False
    default: Any = None
    min: float | None = None
    max: float | None = None
    max_len: int | None = None      # strings, bytes, lists, dicts
    min_len: int | None = None
    choices: tuple[Any, ...] | None = None
    item: Field | None = None     # element spec for lists
    nullable: bool = True           # an explicit null counts as "absent" unless required
    doc: str = ""
    # the value types accepted as they are (the check every request makes first; ANY accepts every type)
    exact_types: frozenset[builtins.type] = dc_field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        types = self.type if isinstance(self.type, tuple) else (self.type,)
        object.__setattr__(self, "exact_types", frozenset(() if ANY in types else types))

    def type_name(self) -> str:
        types = self.type if isinstance(self.type, tuple) else (self.type,)
        return "|".join(_TYPE_NAMES.get(t, getattr(t, "__name__", str(t))) for t in types)


@dataclass(frozen=True)
class Schema:
    fields: dict[str, Field] = dc_field(default_factory=dict)
    extra: bool = False
    doc: str = ""

    def validate(self, args: Any, text_fields: Collection[str] = ()) -> dict[str, Any]:
        """``args`` checked, defaults filled; the values of ``text_fields`` are strings to parse first."""
        if args is None:
            args = {}
        if not isinstance(args, dict):
            raise BadRequest(f"args must be an object, got {type(args).__name__}")
        if not self.extra and not args.keys() <= self.fields.keys():
            unknown = sorted(str(k) for k in args if k not in self.fields)
            raise BadRequest(f"unknown field '{unknown[0]}'", details={"field": unknown[0]})
        out: dict[str, Any] = dict(args) if self.extra else {}
        for name, spec in self.fields.items():
            value = args.get(name, _MISSING)
            if value is _MISSING or (value is None and spec.nullable and not spec.required):
                if spec.required:
                    raise BadRequest(f"missing field '{name}'", details={"field": name})
                out[name] = _copy_default(spec.default)
                continue
            if name in text_fields and isinstance(value, str):
                value = parse_text(name, value, spec)
            out[name] = check_value(name, value, spec)
        return out

    def describe(self) -> dict[str, Any]:
        return {
            "doc": self.doc,
            "extra": self.extra,
            "fields": {
                name: {k: v for k, v in {
                    "type": spec.type_name(), "required": spec.required,
                    "default": spec.default if _is_plain(spec.default) else None,
                    "min": spec.min, "max": spec.max, "max_len": spec.max_len,
                    "choices": list(spec.choices) if spec.choices else None, "doc": spec.doc or None,
                }.items() if v is not None}
                for name, spec in self.fields.items()
            },
        }

    def json_schema(self) -> dict[str, Any]:
        """The request body as a JSON Schema object (for the HTTP port's OpenAPI document)."""
        properties = {name: field_json_schema(spec) for name, spec in self.fields.items()}
        out: dict[str, Any] = {"type": "object", "properties": properties,
                               "additionalProperties": bool(self.extra)}
        required = [name for name, spec in self.fields.items() if spec.required]
        if required:
            out["required"] = required
        if self.doc:
            out["description"] = self.doc
        return out


def field_json_schema(spec: Field) -> dict[str, Any]:
    types = spec.type if isinstance(spec.type, tuple) else (spec.type,)
    if ANY in types:
        out: dict[str, Any] = {}
    else:
        names = [_JSON_TYPES[t] for t in types if t in _JSON_TYPES]
        out = {"type": names[0]} if len(names) == 1 else {"anyOf": [{"type": n} for n in names]}
    if spec.min is not None:
        out["minimum"] = spec.min
    if spec.max is not None:
        out["maximum"] = spec.max
    if spec.choices:
        out["enum"] = list(spec.choices)
    length = {str: ("minLength", "maxLength"), list: ("minItems", "maxItems"), dict: ("minProperties",
                                                                                      "maxProperties")}
    for kind, (low, high) in length.items():
        if kind in types and len(types) == 1:
            if spec.min_len is not None:
                out[low] = spec.min_len
            if spec.max_len is not None:
                out[high] = spec.max_len
    if spec.item is not None:
        out["items"] = field_json_schema(spec.item)
    if spec.nullable and not spec.required and out:
        out = {"anyOf": [out, {"type": "null"}]}
    if spec.doc:
        out["description"] = spec.doc
    return out


_JSON_TYPES = {str: "string", int: "integer", float: "number", bool: "boolean", dict: "object", list: "array",
               bytes: "string"}

EMPTY = Schema()
OPEN = Schema(extra=True)


def check_value(name: str, value: Any, spec: Field) -> Any:
    if value is None:
        if spec.nullable and not spec.required:
            return None
        raise BadRequest(f"field '{name}' must not be null", details={"field": name})
    if type(value) not in spec.exact_types:
        value = _coerce_type(name, value, spec)
    if spec.choices is not None and value not in spec.choices:
        raise BadRequest(f"field '{name}' must be one of {list(spec.choices)}", details={"field": name})
    if (spec.min is not None or spec.max is not None) and isinstance(value, (int, float)) \
            and not isinstance(value, bool):
        if isinstance(value, float) and not math.isfinite(value):
            raise BadRequest(f"field '{name}' must be a finite number", details={"field": name})
        if spec.min is not None and value < spec.min:
            raise BadRequest(f"field '{name}' must be >= {spec.min}", details={"field": name})
        if spec.max is not None and value > spec.max:
            raise BadRequest(f"field '{name}' must be <= {spec.max}", details={"field": name})
    if (spec.max_len is not None or spec.min_len is not None) and isinstance(value, (str, bytes, list, dict)):
        if spec.max_len is not None and len(value) > spec.max_len:
            raise BadRequest(f"field '{name}' is too long ({len(value)} > {spec.max_len})",
                             details={"field": name})
        if spec.min_len is not None and len(value) < spec.min_len:
            raise BadRequest(f"field '{name}' is too short (< {spec.min_len})", details={"field": name})
    if spec.item is not None and isinstance(value, list):
        value = [check_value(f"{name}[{i}]", v, spec.item) for i, v in enumerate(value)]
    return value


TRUE_WORDS, FALSE_WORDS = ("true", "1", "yes", "on"), ("false", "0", "no", "off")


def parse_text(name: str, raw: str, spec: Field) -> Any:
    """A path or query-string value as the field's type wants it; a field that takes strings keeps it as is."""
    types = spec.type if isinstance(spec.type, tuple) else (spec.type,)
    if ANY in types or str in types:
        return raw
    if bool in types and raw.lower() in TRUE_WORDS + FALSE_WORDS:
        return raw.lower() in TRUE_WORDS
    if int in types:
        try:
            return int(raw)
        except ValueError:
            pass
    if float in types:
        try:
            return float(raw)
        except ValueError:
            pass
    if list in types:
        parts = [part for part in raw.split(",") if part]
        return parts if spec.item is None else [parse_text(f"{name}[{i}]", part, spec.item)
                                                for i, part in enumerate(parts)]
    raise BadRequest(f"field '{name}' must be {spec.type_name()}, got {raw!r}", details={"field": name})


def _coerce_type(name: str, value: Any, spec: Field) -> Any:
    types = spec.type if isinstance(spec.type, tuple) else (spec.type,)
    if ANY in types:
        return value
    if isinstance(value, bool) and bool not in types:
        raise BadRequest(f"field '{name}' must be {spec.type_name()}, got boolean", details={"field": name})
    if isinstance(value, types):
        return value
    if float in types and isinstance(value, int):
        return float(value)
    got = _TYPE_NAMES.get(type(value), type(value).__name__)
    raise BadRequest(f"field '{name}' must be {spec.type_name()}, got {got}", details={"field": name})


def _copy_default(default: Any) -> Any:
    if isinstance(default, (dict, list)):
        return type(default)(default)
    return default


def _is_plain(value: Any) -> bool:
    return value is None or isinstance(value, (str, int, float, bool, list, dict))
