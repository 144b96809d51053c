"""SQL persistence of the model registry, the sha256 cache, measured memory and per-model stats.

The schema is created by Alembic (``migrations/model_manager_suite``); this module only reads and
writes rows. Every method opens its own short transaction, so the store is safe to share between
threads.
"""
from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from collections.abc import Iterable, Iterator

from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from agents.sql_engine import SqlSettings, create_sql_engine
from bus.errors import Unavailable
from bus.settings import setting

from .sql_models import ModelFileRow, ModelRow, ModelStatsRow

MODEL_FIELDS = tuple(c.name for c in ModelRow.__table__.columns)
STATS_COUNTERS = ("loads", "load_failures", "total_load_s", "requests", "errors", "prompt_tokens",
                  "tokens_generated", "generation_s")


def default_database_url(data_dir: str | Path) -> str:
    return f"sqlite:///{Path(data_dir).resolve() / 'model_manager_suite.db'}"


@dataclass(frozen=True)
class ModelStoreSqlSettings(SqlSettings):
    """The ``sql`` section of ModelManagerSuite. Its writes (usage log per request, registry hash cache,
    evaluations) default to NORMAL: a commit survives a killed hub, not a power cut, and costs no fsync on
    the request path."""

    busy_timeout_ms: int = setting(30000, minimum=0, maximum=600000)
    synchronous: Literal["OFF", "NORMAL", "FULL", "EXTRA"] = "NORMAL"


STORE_SQL_DEFAULTS = ModelStoreSqlSettings()


def create_store_engine(database_url: str, settings: SqlSettings = STORE_SQL_DEFAULTS) -> Engine:
    """The model store's engine, from the one factory of both hubs (its tables declare no foreign keys).

    Every SQLite transaction begins IMMEDIATE: the suite's writes are read-modify-write (stats counters,
    usage, preloads) from several threads, and a DEFERRED transaction that read before another thread
    committed fails at once with "database is locked" instead of waiting ``busy_timeout``. Its SQL load is a
    few statements per request, so serialising the readers too costs nothing measurable."""
    return create_sql_engine(database_url, settings, application_name="model_manager_suite", foreign_keys=False,
                             begin="IMMEDIATE")


class ModelStore:
    def __init__(self, engine: Engine):
        self.engine = engine
        self._session = sessionmaker(engine, expire_on_commit=False)

    def _tx(self) -> Session:
        return self._session.begin()  # type: ignore[return-value]

    def ping(self) -> bool:
        return engine_ping(self.engine)

    # -- sha256 cache ---------------------------------------------------------------------------
    def cached_hash(self, path: str, size: int, mtime_ns: int) -> str | None:
        with self._guard(), self._tx() as s:
            row = s.get(ModelFileRow, path)
            if row is not None and row.size == size and row.mtime_ns == mtime_ns:
                return row.sha256
            return None

    def remember_hash(self, path: str, size: int, mtime_ns: int, sha256: str) -> None:
        with self._guard(), self._tx() as s:
            row = s.get(ModelFileRow, path) or ModelFileRow(path=path)
            row.size, row.mtime_ns, row.sha256, row.hashed_at = size, mtime_ns, sha256, time.time()
            s.add(row)

    # -- models ---------------------------------------------------------------------------------
    def load_models(self, present_only: bool = False) -> list[dict[str, Any]]:
        with self._guard(), self._tx() as s:
            query = select(ModelRow)
            if present_only:
                query = query.where(ModelRow.present.is_(True))
            return [_row_dict(row) for row in s.scalars(query.order_by(ModelRow.id))]

    def get_model(self, model_id: str) -> dict[str, Any] | None:
        with self._guard(), self._tx() as s:
            row = s.get(ModelRow, model_id)
            return _row_dict(row) if row is not None else None

    def sync_models(self, rows: Iterable[dict[str, Any]]) -> None:
        """Upsert the scanned rows and mark every other row absent (history and stats are kept)."""
        now = time.time()
        rows = list(rows)
        seen = {r["id"] for r in rows}
        with self._guard(), self._tx() as s:
            for data in rows:
                row = s.get(ModelRow, data["id"])
                if row is None:
                    row = ModelRow(id=data["id"], first_seen=now, pinned=False, priority=0)
                for key, value in data.items():
                    if key in MODEL_FIELDS and key not in ("id", "first_seen"):
                        setattr(row, key, value)
                row.present, row.updated_at = True, now
                s.add(row)
            for row in s.scalars(select(ModelRow).where(ModelRow.present.is_(True))):
                if row.id not in seen:
                    row.present, row.updated_at = False, now

    def update_model(self, model_id: str, **fields: Any) -> None:
        with self._guard(), self._tx() as s:
            row = s.get(ModelRow, model_id)
            if row is None:
                return
            for key, value in fields.items():
                if key not in MODEL_FIELDS or key == "id":
                    raise ValueError(f"unknown model field {key}")
                setattr(row, key, value)
            row.updated_at = time.time()

    # -- stats ----------------------------------------------------------------------------------
    def add_stats(self, model_id: str, *, last_load_s: float | None = None, last_used: float | None = None,
                  **counters: float) -> None:
        with self._guard(), self._tx() as s:
            row = s.get(ModelStatsRow, model_id, with_for_update=True)    # PostgreSQL: no lost increment
            if row is None:
                row = ModelStatsRow(model_id=model_id, **{k: 0 for k in STATS_COUNTERS})
                s.add(row)
            for key, delta in counters.items():
                if key not in STATS_COUNTERS:
                    raise ValueError(f"unknown stats counter {key}")
                setattr(row, key, (getattr(row, key) or 0) + delta)
            if last_load_s is not None:
                row.last_load_s = last_load_s
            if last_used is not None:
                row.last_used = max(last_used, row.last_used or 0.0)
            row.updated_at = time.time()

    def get_stats(self, model_id: str) -> dict[str, Any]:
        with self._guard(), self._tx() as s:
            row = s.get(ModelStatsRow, model_id)
            return _stats_dict(row, model_id)

    def all_stats(self) -> dict[str, dict[str, Any]]:
        with self._guard(), self._tx() as s:
            return {row.model_id: _stats_dict(row, row.model_id) for row in s.scalars(select(ModelStatsRow))}

    # -- helpers --------------------------------------------------------------------------------
    @staticmethod
    def _guard() -> contextlib.AbstractContextManager[None]:
        return db_guard("model database")


def engine_ping(engine: Engine) -> bool:
    """True when the database answers a trivial query (a DEFERRED transaction: it does not queue behind writers)."""
    try:
        with engine.execution_options(sqlite_begin="DEFERRED").connect() as conn:
            conn.exec_driver_sql("SELECT 1")
        return True
    except OperationalError:
        return False


@contextlib.contextmanager
def db_guard(what: str) -> Iterator[None]:
    """Turn database outages into the retryable ``unavailable`` error (shared by the suite's SQL users)."""
    try:
        yield
    except OperationalError as exc:
        raise Unavailable(f"{what} unavailable: {exc.orig}") from exc


def _row_dict(row: ModelRow) -> dict[str, Any]:
    return {name: getattr(row, name) for name in MODEL_FIELDS}


def _stats_dict(row: ModelStatsRow | None, model_id: str) -> dict[str, Any]:
    if row is None:
        out: dict[str, Any] = {k: 0 for k in STATS_COUNTERS}
        out.update(model_id=model_id, last_load_s=None, last_used=None)
    else:
        out = {c.name: getattr(row, c.name) for c in ModelStatsRow.__table__.columns}
        out.pop("updated_at", None)
    gen_s = out.get("generation_s") or 0.0
    out["tokens_per_s"] = round(out["tokens_generated"] / gen_s, 3) if gen_s > 0 else None
    out["avg_load_s"] = round(out["total_load_s"] / out["loads"], 4) if out["loads"] else None
    return out
