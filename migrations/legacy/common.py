"""Shared parts of the legacy importers: the report, value conversion, the target transaction, row upserts.

Idempotency rule of every importer: a legacy row is looked up in the hub by its key (primary key, or the
natural key of tables with generated ids). Absent: inserted. Present with the same values: ``unchanged``.
Present with other values: ``skipped`` with the reason "differs" and the hub's copy is kept (the hub may
have been serving and changing it), unless ``overwrite`` (``--overwrite``: the legacy agent is still the
one serving that data, e.g. a final copy after an earlier pre-copy) replaces the hub's values (``updated``).
Either way a second run changes nothing and says so.

The target database is brought to the newest Alembic revision first (``migrations/runner.py``) and every
write goes through the hubs' SQLAlchemy models, in one transaction that a ``--dry-run`` rolls back.
"""
from __future__ import annotations

import contextlib
import json
import math
import sqlite3
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from collections.abc import Callable, Iterable, Iterator

from sqlalchemy import Boolean, DateTime, Float, Integer, String, Text, select
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session
from sqlalchemy.types import JSON

from agents.sql_engine import SqlSettings, create_sql_engine
from migrations.runner import upgrade_to_head

EXAMPLES = 5


class ImportRefused(ValueError):
    """The source cannot be imported (missing file, wrong schema, target tables absent)."""


class RowSkipped(Exception):
    """Raised by a row converter: the row is not imported; the message is the reason."""


@dataclass
class TableReport:
    source: str
    target: str
    read: int = 0
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    overwrite: bool = False

    def skip(self, key: Any, reason: str) -> None:
        self.skipped.append((str(key), reason))

    def to_dict(self) -> dict:
        return {"source": self.source, "target": self.target, "read": self.read, "inserted": self.inserted,
                "updated": self.updated, "unchanged": self.unchanged, "skipped": len(self.skipped),
                "skipped_by_reason": dict(Counter(reason for _, reason in self.skipped)),
                "skipped_rows": [{"key": k, "reason": r} for k, r in self.skipped], "notes": self.notes}


@dataclass
class Report:
    kind: str
    source: str
    target: str
    dry_run: bool
    overwrite: bool = False
    tables: list[TableReport] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def table(self, source: str, target: str) -> TableReport:
        report = TableReport(source, target, overwrite=self.overwrite)
        self.tables.append(report)
        return report

    @property
    def changed(self) -> int:
        return sum(t.inserted + t.updated for t in self.tables)

    def to_dict(self) -> dict:
        return {"kind": self.kind, "source": self.source, "target": self.target, "dry_run": self.dry_run,
                "overwrite": self.overwrite, "changed": self.changed, "tables": [t.to_dict() for t in self.tables],
                "notes": self.notes}

    def render(self) -> str:
        verb = "would insert" if self.dry_run else "inserted"
        lines = [f"{self.kind}: {self.source} -> {self.target}{'  (dry run: nothing written)' if self.dry_run else ''}",
                 f"  {'legacy':34} {'hub':24} {'read':>7} {verb:>14} {'updated':>8} {'unchanged':>10} "
                 f"{'skipped':>8}"]
        for t in self.tables:
            lines.append(f"  {t.source:34} {t.target:24} {t.read:7} {t.inserted:14} {t.updated:8} {t.unchanged:10} "
                         f"{len(t.skipped):8}")
        for t in self.tables:
            lines.extend(_skip_lines(t))
            lines.extend(f"  note ({t.source}): {note}" for note in t.notes)
        lines.extend(f"  note: {note}" for note in self.notes)
        return "\n".join(lines)


def _skip_lines(table: TableReport) -> list[str]:
    grouped: dict[str, list[str]] = defaultdict(list)
    for key, reason in table.skipped:
        grouped[reason].append(key)
    lines = []
    for reason, keys in grouped.items():
        more = f" (+{len(keys) - EXAMPLES} more)" if len(keys) > EXAMPLES else ""
        lines.append(f"  skipped {len(keys)} from {table.source}: {reason}: {', '.join(keys[:EXAMPLES])}{more}")
    return lines


# --------------------------------------------------------------------------- legacy sources

@contextlib.contextmanager
def open_legacy_sqlite(path: str | Path, required_tables: Iterable[str]) -> Iterator[sqlite3.Connection]:
    """The legacy SQLite file, read-only (the legacy agents may still have it open)."""
    path = Path(path)
    if not path.is_file():
        raise ImportRefused(f"legacy database not found: {path}")
    conn = sqlite3.connect(f"file:{path.resolve()}?mode=ro", uri=True)
    conn.row_factory = sqlite3.Row
    try:
        present = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        missing = [t for t in required_tables if t not in present]
        if missing:
            raise ImportRefused(f"{path}: not the expected legacy database (missing tables: {', '.join(missing)})")
        yield conn
    finally:
        conn.close()


def legacy_rows(conn: sqlite3.Connection, table: str) -> list[dict]:
    return [dict(row) for row in conn.execute(f'SELECT * FROM "{table}"')]


def read_json_file(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise ImportRefused(f"{path}: not valid JSON: {exc}") from exc


# --------------------------------------------------------------------------- value conversion

def to_epoch(value: Any) -> float | None:
    """Epoch seconds from a REAL, an integer, or the ISO / ``datetime.now()`` text sqlite3 stored."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise RowSkipped(f"timestamp {value!r} is not a time")
    if isinstance(value, (int, float)):
        if not math.isfinite(value):
            raise RowSkipped(f"timestamp {value!r} is not finite")
        return float(value)
    if isinstance(value, datetime):
        return value.timestamp()
    text = str(value).strip()
    try:
        return float(text)
    except ValueError:
        pass
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError as exc:
        raise RowSkipped(f"timestamp {value!r} is not readable") from exc


def to_json(value: Any, default: Any, what: str) -> Any:
    """Decode a JSON text column (legacy stored ``json.dumps``); empty -> ``default``."""
    if value is None or value == "":
        return default
    if not isinstance(value, (str, bytes)):
        return value
    try:
        return json.loads(value)
    except ValueError as exc:
        raise RowSkipped(f"{what} is not valid JSON") from exc


def to_float(value: Any, default: float | None, what: str) -> float | None:
    if value is None or value == "":
        return default
    try:
        number = float(value)
    except (TypeError, ValueError) as exc:
        raise RowSkipped(f"{what} {value!r} is not a number") from exc
    if not math.isfinite(number):
        raise RowSkipped(f"{what} {value!r} is not finite")
    return number


def to_int(value: Any, default: int, what: str) -> int:
    number = to_float(value, None, what)
    return default if number is None else int(number)


def to_bool(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "t")
    return bool(value)


def convert_for_column(column: Any, value: Any, what: str) -> Any:
    """Convert a legacy value to the Python type of a target column (generic importers)."""
    kind = column.type
    if value is None:
        return None
    if isinstance(kind, JSON):
        return to_json(value, None, what)
    if isinstance(kind, Boolean):
        return to_bool(value)
    if isinstance(kind, DateTime):
        epoch = to_epoch(value)
        return None if epoch is None else datetime.fromtimestamp(epoch)
    if isinstance(kind, Float):
        return to_epoch(value) if _is_time_name(column.name) else to_float(value, None, what)
    if isinstance(kind, Integer):
        return to_int(value, 0, what)
    if isinstance(kind, (String, Text)):
        return value if isinstance(value, str) else str(value)
    return value


def _is_time_name(name: str) -> bool:
    return name.endswith(("_at", "timestamp", "_time")) or name in ("timestamp", "last_updated", "last_seen")


# --------------------------------------------------------------------------- target

@contextlib.contextmanager
def target_transaction(database_url: str, tree: str, dry_run: bool) -> Iterator[Session]:
    """Migrate the hub database to head and yield an ORM session in one transaction (rolled back on dry run).

    Foreign keys are checked at the end (``PRAGMA foreign_key_check`` on SQLite): the importers resolve
    references themselves, this is the proof that they did.
    """
    engine = create_sql_engine(database_url, SqlSettings(busy_timeout_ms=30000), foreign_keys=False,
                               begin="IMMEDIATE", pooled=False)
    sqlite = engine.dialect.name == "sqlite"
    try:
        with engine.connect() as conn:
            transaction = conn.begin()
            try:
                upgrade_to_head(database_url, tree, connection=conn)
                session = Session(bind=conn, autoflush=True)
                yield session
                session.flush()
                session.close()
                if sqlite:
                    _check_foreign_keys(conn)
                if dry_run:
                    transaction.rollback()
                else:
                    transaction.commit()
            except BaseException:
                if transaction.is_active:
                    transaction.rollback()
                raise
    finally:
        engine.dispose()


def _check_foreign_keys(conn: Connection) -> None:
    broken = conn.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
    if broken:
        raise ImportRefused(f"import would break foreign keys: {broken[:5]}")


def upsert(session: Session, report: TableReport, model: type, key: dict, values: dict) -> Any:
    """Insert ``model(**key, **values)`` unless a row with ``key`` exists (then unchanged or differs)."""
    existing = session.execute(select(model).filter_by(**key)).scalars().first()
    if existing is None:
        row = model(**key, **values)
        session.add(row)
        session.flush()
        report.inserted += 1
        return row
    different = [name for name, value in values.items() if not _same(getattr(existing, name), value)]
    if not different:
        report.unchanged += 1
    elif report.overwrite:
        for name in different:
            setattr(existing, name, values[name])
        session.flush()
        report.updated += 1
    else:
        report.skip(_key_text(key), f"already in the hub with different {', '.join(sorted(different))} "
                                    "(the hub's copy is kept)")
    return existing


def _same(current: Any, new: Any) -> bool:
    if isinstance(current, float) or isinstance(new, float):
        try:
            return current is not None and new is not None and math.isclose(float(current), float(new),
                                                                             rel_tol=1e-12, abs_tol=1e-9)
        except (TypeError, ValueError):
            return False
    return current == new


def _key_text(key: dict) -> str:
    return "/".join(str(v) for v in key.values())


def import_rows(rows: Iterable[dict], report: TableReport, convert: Callable[[dict], tuple[dict, dict] | None],
                session: Session, model: type, key_of: Callable[[dict], str]) -> None:
    """Convert each legacy row to ``(key, values)`` and upsert it; a ``RowSkipped`` is reported, not raised."""
    for row in rows:
        report.read += 1
        try:
            converted = convert(row)
        except RowSkipped as reason:
            report.skip(key_of(row), str(reason))
            continue
        if converted is not None:
            upsert(session, report, model, *converted)


def model_for_table(base: Any, table: str) -> type | None:
    for mapper in base.registry.mappers:
        if getattr(mapper, "local_table", None) is not None and mapper.local_table.name == table:
            return mapper.class_
    return None


def attribute_names(model: type) -> dict[str, str]:
    """Column name -> mapped attribute name (``metadata`` columns are ``meta`` attributes)."""
    mapper = model.__mapper__
    return {prop.columns[0].name: prop.key for prop in mapper.column_attrs}
