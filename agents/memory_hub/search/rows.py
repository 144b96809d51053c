"""SQL access of the search engine: embeddings, candidate confirmation and row fetches on ``memories``.

SQL is the source of truth: FAISS only proposes ids; every id returned to a caller has been read back
here under the caller's filters (and ``expires_at``), so a stale index can never surface a row that
no longer exists. Embeddings are stored in ``memories.embedding`` as 384 little-endian float32.
"""
from __future__ import annotations

import logging
import time
from typing import Any
from collections.abc import Iterable, Iterator, Sequence

import numpy as np
from sqlalchemy import Engine, bindparam, func, literal_column, select
from sqlalchemy.sql.elements import ColumnElement

from agents.memory_hub.search.filters import combine, live_clause
from agents.memory_hub.stores.sql_models import Memory

log = logging.getLogger(__name__)

CHUNK = 500          # ids per IN (...) query
DTYPE = np.dtype("<f4")


def resolve_engine(source: Any) -> Engine:
    """Accept an SQLAlchemy ``Engine``, a store with an ``engine`` attribute (``SqlStore``), or a URL."""
    if isinstance(source, Engine):
        return source
    if isinstance(getattr(source, "engine", None), Engine):
        return source.engine
    if isinstance(source, str):
        from agents.memory_hub.stores.sql import SqlStore

        return SqlStore(source).engine
    raise TypeError(f"expected an Engine, a store with .engine, or a URL; got {type(source).__name__}")


def writer(engine: Engine) -> Engine:
    """The engine for write transactions: ``BEGIN IMMEDIATE`` on ``SqlStore``'s SQLite engines (no lock
    upgrade), the writers' advisory lock on its PostgreSQL engines (see ``stores/sql.py``)."""
    return engine.execution_options(sqlite_begin="IMMEDIATE")


def to_blob(vector: np.ndarray) -> bytes:
    return np.asarray(vector, dtype=DTYPE).tobytes()


def from_blob(blob: bytes | None, dim: int) -> np.ndarray | None:
    if blob is None or len(blob) != dim * DTYPE.itemsize:
        return None
    return np.frombuffer(blob, dtype=DTYPE)


class MemoryRows:
    """Queries on ``memories`` used by ``SearchEngine``."""

    def __init__(self, engine: Engine, dim: int = 384):
        self.engine = engine
        self.writer = writer(engine)
        self.dim = dim
        self.table = Memory.__table__
        self.dialect = engine.dialect.name
        self.columns = [col for col in self.table.c if col.name != "embedding"]

    # state ------------------------------------------------------------------------------------
    def fingerprint(self) -> dict[str, Any]:
        """Embedded row count and max(updated_at): a snapshot is only trusted if both still match."""
        t = self.table
        with self.engine.connect() as conn:
            count, newest = conn.execute(select(func.count(t.c.embedding), func.max(t.c.updated_at))).one()
        return {"embedded": int(count), "max_updated": float(newest) if newest is not None else None}

    def iter_embeddings(self, batch: int = 5000) -> Iterator[tuple[list[str], np.ndarray]]:
        """Every stored embedding, in batches of ``(ids, matrix)``."""
        t = self.table
        query = select(t.c.memory_id, t.c.embedding).where(t.c.embedding.is_not(None))
        with self.engine.connect() as conn:
            result = conn.execution_options(yield_per=batch).execute(query)
            for part in result.partitions():
                yield self._decode(part)

    # writes -----------------------------------------------------------------------------------
    def write_embeddings(self, ids: Sequence[str], vectors: np.ndarray) -> list[str]:
        """Store embeddings of the rows that exist; returns the ids written (others are skipped)."""
        t = self.table
        now = time.time()
        params = [{"b_id": m, "b_emb": to_blob(v), "b_now": now} for m, v in zip(ids, vectors)]
        if not params:
            return []
        stmt = (t.update().where(t.c.memory_id == bindparam("b_id"))
                .values(embedding=bindparam("b_emb"), updated_at=bindparam("b_now")))
        with self.writer.begin() as conn:
            conn.execute(stmt, params)              # a write first: the write lock is held from here
            present = self._existing(conn, ids)
        return [m for m in ids if m in present]

    # reads ------------------------------------------------------------------------------------
    def confirm(self, ids: Sequence[str], clauses: list[ColumnElement]) -> set[str]:
        """The subset of ``ids`` that exist, are live and satisfy ``clauses`` (built with ``use_indexes=False``)."""
        t = self.table
        found: set[str] = set()
        with self.engine.connect() as conn:
            for chunk in _chunks(ids):
                cond = combine([t.c.memory_id.in_(chunk), live_clause(t, use_indexes=False), *clauses])
                found.update(conn.execute(select(t.c.memory_id).where(cond)).scalars())
        return found

    def fetch_rows(self, ids: Sequence[str], clauses: Sequence[ColumnElement] = ()) -> dict[str, dict[str, Any]]:
        """Row dicts (every column but ``embedding``) of the live ``ids`` matching ``clauses``."""
        t = self.table
        rows: dict[str, dict[str, Any]] = {}
        with self.engine.connect() as conn:
            for chunk in _chunks(ids):
                cond = combine([t.c.memory_id.in_(chunk), live_clause(t, use_indexes=False), *clauses])
                for row in conn.execute(select(*self.columns).where(cond)).mappings():
                    rows[row["memory_id"]] = dict(row)
        return rows

    def existing(self, ids: Sequence[str]) -> set[str]:
        """The subset of ``ids`` with a row (expired or not)."""
        with self.engine.connect() as conn:
            return self._existing(conn, ids)

    def contents(self, ids: Sequence[str]) -> dict[str, str]:
        t = self.table
        out: dict[str, str] = {}
        with self.engine.connect() as conn:
            for chunk in _chunks(ids):
                out.update(conn.execute(select(t.c.memory_id, t.c.content).where(t.c.memory_id.in_(chunk))).all())
        return out

    def count_upto(self, clauses: list[ColumnElement], limit: int) -> int:
        """min(rows matching ``clauses``, ``limit``), visiting at most ``limit`` rows (query planning only:
        expiry and missing embeddings are ignored, so the filter columns' indexes can answer alone)."""
        t = self.table
        inner = select(literal_column("1")).select_from(t).where(combine(list(clauses))).limit(limit).subquery()
        with self.engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(inner)).scalar_one())

    def subset_embeddings(self, clauses: list[ColumnElement]) -> tuple[list[str], np.ndarray]:
        """Embeddings of every live row matching ``clauses`` (used for exact filtered search)."""
        t = self.table
        query = select(t.c.memory_id, t.c.embedding).where(
            combine([t.c.embedding.is_not(None), live_clause(t), *clauses]))
        with self.engine.connect() as conn:
            return self._decode(conn.execute(query).all())

    def missing_embeddings(self, limit: int) -> list[tuple[str, str]]:
        """Rows written without an embedding (legacy imports, other code paths), oldest first."""
        t = self.table
        query = (select(t.c.memory_id, t.c.content).where(t.c.embedding.is_(None))
                 .order_by(t.c.created_at).limit(limit))
        with self.engine.connect() as conn:
            return [(m, c) for m, c in conn.execute(query).all()]

    # internals --------------------------------------------------------------------------------
    def _existing(self, conn: Any, ids: Sequence[str]) -> set[str]:
        t = self.table
        present: set[str] = set()
        for chunk in _chunks(ids):
            present.update(conn.execute(select(t.c.memory_id).where(t.c.memory_id.in_(chunk))).scalars())
        return present

    def _decode(self, pairs: Iterable[Any]) -> tuple[list[str], np.ndarray]:
        ids: list[str] = []
        vectors: list[np.ndarray] = []
        for memory_id, blob in pairs:
            vector = from_blob(blob, self.dim)
            if vector is None:
                log.warning("memory %s has a malformed embedding (%d bytes); ignored", memory_id, len(blob or b""))
                continue
            ids.append(memory_id)
            vectors.append(vector)
        matrix = np.vstack(vectors) if vectors else np.zeros((0, self.dim), dtype=np.float32)
        return ids, np.ascontiguousarray(matrix, dtype=np.float32)


def _chunks(ids: Sequence[str]) -> Iterator[list[str]]:
    ids = list(ids)
    for start in range(0, len(ids), CHUNK):
        yield ids[start:start + CHUNK]
