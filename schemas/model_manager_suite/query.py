"""A ``Schema`` whose boolean and numeric fields also take their text form (HTTP query strings).

``GET /models?rescan=true`` reaches the schema as ``{"rescan": "true"}``: ``QuerySchema.validate`` turns
such text into the field's type first (``true/false/1/0/yes/no/on/off``, integers, numbers; a boolean field
also takes an integer, non-zero being true), then validates as ``Schema`` does. The handler gets typed values.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bus.errors import BadRequest
from schemas.base import Field, Schema

TRUE_WORDS = frozenset({"1", "true", "yes", "on"})
FALSE_WORDS = frozenset({"0", "false", "no", "off", ""})


@dataclass(frozen=True)
class QuerySchema(Schema):
    def validate(self, args: Any) -> dict[str, Any]:
        if isinstance(args, dict):
            args = {name: _from_text(str(name), value, self.fields[name]) if name in self.fields else value
                    for name, value in args.items()}
        return super().validate(args)


def _from_text(name: str, value: Any, spec: Field) -> Any:
    if spec.type is bool:
        return _boolean(name, value)
    if spec.type is int and isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            raise BadRequest(f"field '{name}' must be an integer", details={"field": name}) from None
    if spec.type is float and isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            raise BadRequest(f"field '{name}' must be a number", details={"field": name}) from None
    return value


def _boolean(name: str, value: Any) -> Any:
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int):
        return value != 0
    if isinstance(value, str):
        text = value.strip().lower()
        if text in TRUE_WORDS:
            return True
        if text in FALSE_WORDS:
            return False
    raise BadRequest(f"field '{name}' must be a boolean", details={"field": name})
