"""Search filters: validation and translation into SQL WHERE clauses on ``memories``.

Accepted fields (all optional; every given one must hold):

* ``namespace`` (str), ``session_id`` (str), ``parent_id`` (str)
* ``memory_type`` (str, or a list of str meaning "any of")
* ``tags`` (list of str, or one str): the memory has *all* of them
* ``created_after`` / ``created_before`` (epoch seconds, or an ISO-8601 string): inclusive bounds on ``created_at``
* ``min_importance`` (number)

Unknown fields and wrong types raise ``BadRequest`` naming the field. Expired memories
(``expires_at`` in the past) are never returned; that condition is added separately (``live_clause``).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from collections.abc import Mapping

from sqlalchemy import JSON, Table, and_, cast, exists, func, literal_column, or_, select, true
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.sql.elements import ColumnElement

from bus.errors import BadRequest

FIELDS = ("namespace", "memory_type", "session_id", "parent_id", "tags", "created_after", "created_before",
          "min_importance")
MAX_LIST = 50


@dataclass(frozen=True)
class Filters:
    namespace: str | None = None
    memory_type: tuple[str, ...] = ()
    session_id: str | None = None
    parent_id: str | None = None
    tags: tuple[str, ...] = ()
    created_after: float | None = None
    created_before: float | None = None
    min_importance: float | None = None
    given: tuple[str, ...] = field(default=())

    @property
    def empty(self) -> bool:
        return not self.given


def parse_filters(raw: Mapping[str, Any] | None) -> Filters:
    """Validate a filters mapping (``None`` = no filters)."""
    if raw is None:
        return Filters()
    if not isinstance(raw, Mapping):
        raise BadRequest("filters must be an object")
    unknown = sorted(set(raw) - set(FIELDS))
    if unknown:
        raise BadRequest(f"unknown filter field '{unknown[0]}' (allowed: {', '.join(FIELDS)})",
                         details={"field": unknown[0]})
    values: dict[str, Any] = {}
    for name in ("namespace", "session_id", "parent_id"):
        if raw.get(name) is not None:
            values[name] = _string(name, raw[name])
    if raw.get("memory_type") is not None:
        values["memory_type"] = _strings("memory_type", raw["memory_type"])
    if raw.get("tags") is not None:
        values["tags"] = _strings("tags", raw["tags"])
    for name in ("created_after", "created_before"):
        if raw.get(name) is not None:
            values[name] = _epoch(name, raw[name])
    if raw.get("min_importance") is not None:
        values["min_importance"] = _number("min_importance", raw["min_importance"])
    return Filters(**values, given=tuple(sorted(values)))


def where_clauses(table: Table, flt: Filters, dialect: str, *, use_indexes: bool = True) -> list[ColumnElement]:
    """SQL conditions for ``flt`` on the ``memories`` table.

    ``use_indexes=False`` wraps the columns (``col || ''``, ``col + 0``) so that the planner cannot pick
    their indexes: used when the rows are already pinned by primary key (``memory_id IN (...)``), where
    SQLite without statistics would otherwise scan, say, a whole namespace instead of doing 500 lookups.
    """
    c = table.c
    text_col = (lambda name: c[name]) if use_indexes else (lambda name: c[name].concat(""))
    num_col = (lambda name: c[name]) if use_indexes else (lambda name: c[name] + 0)
    out: list[ColumnElement] = []
    for name in ("namespace", "session_id", "parent_id"):
        value = getattr(flt, name)
        if value is not None:
            out.append(text_col(name) == value)
    if flt.memory_type:
        out.append(text_col("memory_type").in_(flt.memory_type))
    if flt.created_after is not None:
        out.append(num_col("created_at") >= flt.created_after)
    if flt.created_before is not None:
        out.append(num_col("created_at") <= flt.created_before)
    if flt.min_importance is not None:
        out.append(num_col("importance") >= flt.min_importance)
    out.extend(_tag_clause(table, tag, dialect) for tag in flt.tags)
    return out


def live_clause(table: Table, now: float | None = None, *, use_indexes: bool = True) -> ColumnElement:
    """Not expired."""
    now = time.time() if now is None else now
    expires = table.c.expires_at if use_indexes else table.c.expires_at + 0
    return or_(expires.is_(None), expires > now)


def combine(clauses: list[ColumnElement]) -> ColumnElement:
    return and_(*clauses) if clauses else true()


def row_matches(row: Mapping[str, Any], flt: Filters) -> bool:
    """Python check of the tag condition (exact on every dialect; SQL may approximate it)."""
    tags = row.get("tags") or []
    return all(tag in tags for tag in flt.tags)


def _tag_clause(table: Table, tag: str, dialect: str) -> ColumnElement:
    if dialect == "sqlite":
        each = func.json_each(table.c.tags).table_valued("value")
        return exists(select(literal_column("1")).select_from(each).where(each.c.value == tag))
    if dialect == "postgresql":
        return cast(table.c.tags, JSONB).contains(cast([tag], JSONB))
    # elsewhere: a textual pre-filter; row_matches makes it exact
    return cast(table.c.tags, JSON).as_string().like(f'%"{_escape_like(tag)}"%', escape="\\")


def _escape_like(value: str) -> str:
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _string(name: str, value: Any) -> str:
    if not isinstance(value, str) or not value or len(value) > 256:
        raise BadRequest(f"filter '{name}' must be a non-empty string", details={"field": name})
    return value


def _strings(name: str, value: Any) -> tuple[str, ...]:
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, (list, tuple)) or not items or len(items) > MAX_LIST:
        raise BadRequest(f"filter '{name}' must be a string or a list of 1..{MAX_LIST} strings",
                         details={"field": name})
    return tuple(_string(name, item) for item in items)


def _number(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise BadRequest(f"filter '{name}' must be a number", details={"field": name})
    return float(value)


def _epoch(name: str, value: Any) -> float:
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            raise BadRequest(f"filter '{name}' must be epoch seconds or an ISO-8601 time",
                             details={"field": name}) from None
        return parsed.timestamp()          # a naive time is local time
    return _number(name, value)
