"""A ``Schema`` whose boolean and numeric fields also take their text form, from every transport.

ModelManagerSuite's native API took ``{"rescan": "true"}`` and ``{"pin": 1}`` before HTTP query strings
existed, so here every string value is parsed as its field's type (``schemas.base.parse_text``: true/false,
1/0, yes/no, on/off, integers, numbers), not only path and query values, and a boolean field also takes an
integer (non-zero is true). Then it validates as ``Schema`` does: the handler gets typed values.
"""
from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from schemas.base import Schema


@dataclass(frozen=True)
class QuerySchema(Schema):
    def validate(self, args: Any, text_fields: Collection[str] = ()) -> dict[str, Any]:
        if isinstance(args, dict):
            args = {name: self._integer_flag(name, value) for name, value in args.items()}
            text_fields = {name for name, value in args.items() if isinstance(value, str)}
        return super().validate(args, text_fields)

    def _integer_flag(self, name: Any, value: Any) -> Any:
        spec = self.fields.get(name)
        if spec is not None and spec.type is bool and isinstance(value, int) and not isinstance(value, bool):
            return value != 0
        return value
