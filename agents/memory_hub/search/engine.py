"""``SearchEngine``: semantic, keyword and hybrid search over ``memories``, filters applied in SQL.

Public API (all methods thread-safe; errors are ``bus.errors`` types):

* ``SearchEngine(sql, embedder=None, settings=SearchSettings(), *, data_dir=None, default_wait_s=30)``: ``sql``
  is an SQLAlchemy ``Engine``, a store with an ``.engine``, or a URL (migrated to head by the caller);
  ``settings`` is the typed ``search`` section (``search/settings.py``); ``data_dir``
  anchors a relative ``snapshot_path``. ``start()`` loads the model, checks the FTS index, loads the FAISS
  snapshot or rebuilds from SQL and embeds rows left without an embedding (the first call of any method
  does it too); ``start_background()`` does it on a thread: reads meanwhile wait for it until their
  ``deadline`` (a ``time.monotonic()`` value; default ``default_wait_s``), then raise retryable
  ``Unavailable``; ``close()`` saves a snapshot; ``health() -> (ok, detail)``; ``rebuild() -> int``
  reloads the index from SQL.
* ``index_memory(memory_id, text=None)`` / ``index_many(items)``: embed (``text`` defaults to the row's
  ``content``), store the embedding in the row, update FAISS. ``NotFound`` / skipped for missing rows.
  During a background start they return at once: the start embeds those rows before it reports ready.
* ``remove(memory_id | [ids]) -> int``: drop from the vector index (call it when a row is deleted;
  results are confirmed against SQL anyway).
* ``search(query, k=10, mode="hybrid", filters=None, deadline=None) -> [{memory_id, score, vector_score,
  keyword_score, vector_rank, memory}]``, best first. ``score``: cosine plus a keyword bonus for memories
  holding most of the query's words (hybrid, ``ranking.fuse``), cosine (vector) or the keyword rank (keyword:
  BM25 on FTS5, ts_rank_cd on PostgreSQL); ``vector_rank``: the memory's rank among the vector hits (None when
  it is not among them). ``health()`` detail ``fts``: the keyword engine (``fts5``, ``postgres``, or ``off``
  for the LIKE fallback).
* ``find_near_duplicates(text, namespace=None, threshold=None, k=10, exclude=()) -> [{memory_id, score, memory}]``.
* ``pack_context(query, token_budget, filters=None, k=None, mode="hybrid") -> {query, token_budget,
  tokens, memories: [... + tokens, content], duplicates_dropped, text}``.

Filtered vector search (the plan, per query): with no filter, FAISS top-n and an SQL check of those ids
(growing n while tombstoned or vanished ids leave fewer than n). With filters, a bounded count of the
matching rows (at most ``exact_filter_max + 1`` rows visited): a subset that small is searched
*exactly* from its SQL embeddings (a few ms, recall 1, never short of hits however selective the filter);
a bigger subset is at least ``exact_filter_max / N`` of the data, so over-fetching ``n * overfetch`` from
FAISS and growing x4 finds n confirmed hits in one or two rounds (beyond ``OVERFETCH_MAX`` candidates it
falls back to the exact subset search). Keyword search applies the filters inside the FTS5 statement.
"""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from collections.abc import Iterable, Mapping

import numpy as np

from agents.memory_hub.search import keyword, ranking
from agents.memory_hub.search.embedder import Embedder
from agents.memory_hub.search.filters import Filters, parse_filters, row_matches, where_clauses
from agents.memory_hub.search.maintenance import Maintainer
from agents.memory_hub.search.rows import MemoryRows, resolve_engine
from agents.memory_hub.search.settings import SearchSettings
from agents.memory_hub.search.vector_index import VectorIndex
from bus.errors import BadRequest, NotFound

log = logging.getLogger(__name__)

MODES = ("hybrid", "vector", "keyword")
OVERFETCH_MAX = 4096
MAX_TOKEN_BUDGET = 1_000_000
READY_MARGIN_S = 0.25        # a call waiting for a loading engine gives up this long before its deadline


@dataclass(frozen=True)
class Where:
    """A query's filters as SQL: ``scan`` selects rows by the filters (indexes allowed), ``pinned`` checks
    rows already selected by primary key (indexes of filter columns disabled)."""

    flt: Filters
    scan: list
    pinned: list


class SearchEngine:
    """See module docstring."""

    def __init__(self, sql: Any, embedder: Embedder | None = None, settings: SearchSettings | None = None,
                 *, data_dir: str | Path | None = None, default_wait_s: float = 30.0):
        self.settings = settings or SearchSettings()
        self.engine = resolve_engine(sql)
        self.rows = MemoryRows(self.engine)
        self._own_embedder = embedder is None
        self.embedder = embedder or Embedder.from_settings(self.settings, data_dir)
        self.index = VectorIndex.from_settings(self.settings)
        self.keyword_engine = keyword.LIKE     # set at start: fts5 / postgres / like (keyword.detect)
        self.maintainer = Maintainer(self, _snapshot_dir(self.settings.snapshot_path, data_dir),
                                     default_wait_s)
        self.write_lock = threading.Lock()

    # lifecycle ---------------------------------------------------------------------------------
    def start(self) -> dict[str, Any]:
        """Load the model, check FTS, load or rebuild the vector index, start maintenance (idempotent)."""
        return self.maintainer.start()

    def start_background(self) -> threading.Thread:
        """``start()`` on a thread (for the hub); meanwhile reads wait for it up to their deadline, writes
        are acknowledged at once and indexed by the start's catch-up (before the engine is ready)."""
        return self.maintainer.start_background()

    def close(self) -> None:
        """Stop maintenance and save a snapshot (call after the handlers stopped writing)."""
        self.maintainer.close()
        if self._own_embedder:
            self.embedder.close()

    def wait_ready(self, timeout: float | None = None) -> bool:
        """Block until the engine is ready, or a background start ended without it, or ``timeout``."""
        return self.maintainer.wait_ready(timeout)

    def health(self) -> tuple[bool, dict[str, Any]]:
        fts = "off" if self.keyword_engine == keyword.LIKE else self.keyword_engine
        return self.maintainer.ready, {**self.index.stats(), "fts": fts,
                                       "model_loaded": self.embedder.ready,
                                       "embed_backend": self.embedder.backend_in_use}

    def rebuild(self) -> int:
        """Reload every embedding from SQL into a fresh index; returns the vector count."""
        return self.maintainer.rebuild()

    # writes ------------------------------------------------------------------------------------
    def index_memory(self, memory_id: str, text: str | None = None) -> None:
        if self.maintainer.accept_write() and not self.index_now([(memory_id, text)]):
            raise NotFound(f"no memory {memory_id}")

    def index_many(self, items: Mapping[str, str | None] | Iterable[tuple[str, str | None]],
                   batch: int = 256) -> list[str]:
        """Embed and store many memories; returns the ids indexed (rows that do not exist are skipped).

        ``items``: ``{memory_id: text | None}``, ``(memory_id, text | None)`` pairs, or row-like dicts with
        ``memory_id`` and optionally ``content``; a missing text means the row's stored ``content``.
        """
        pairs = list(items.items()) if isinstance(items, Mapping) else [_pair(p) for p in items]
        if not self.maintainer.accept_write():
            return []
        return self.index_now(pairs, batch)

    def index_now(self, pairs: list[tuple[str, str | None]], batch: int = 256) -> list[str]:
        """``index_many`` without the readiness gate (the start-up catch-up and the backfill use it)."""
        chunks = [self._with_text(pairs[i:i + batch]) for i in range(0, len(pairs), batch)]
        done: list[str] = []
        pending = self.embedder.encode_async([t for _, t in chunks[0]]) if chunks else None
        for i, chunk in enumerate(chunks):       # embed chunk i+1 while chunk i is written
            vectors = pending.result()
            if i + 1 < len(chunks):
                pending = self.embedder.encode_async([t for _, t in chunks[i + 1]])
            done.extend(self._store(chunk, vectors))
        return done

    def remove(self, memory_ids: str | Iterable[str]) -> int:
        ids = [memory_ids] if isinstance(memory_ids, str) else list(memory_ids)
        with self.write_lock:
            removed = self.index.remove(ids)
        self.maintainer.changed(removed)
        return removed

    # reads -------------------------------------------------------------------------------------
    def search(self, query: str, k: int | None = None, mode: str = "hybrid",
               filters: Mapping[str, Any] | None = None, deadline: float | None = None) -> list[dict[str, Any]]:
        query, k = self._check_query(query), self._check_k(k)
        if mode not in MODES:
            raise BadRequest(f"mode must be one of {', '.join(MODES)}", details={"field": "mode"})
        where = self._where(parse_filters(filters))
        self.maintainer.ensure_started(_wait_until(deadline))
        depth = max(k, self.settings.candidates) if mode == "hybrid" else k
        pending = self.embedder.encode_query_async(query) if mode != "keyword" else None
        kw = self._keyword_hits(query, where, depth) if mode != "vector" else []   # while embedding runs
        qvec = pending.result() if pending is not None else None
        vec = self._vector_hits(qvec, where, depth) if qvec is not None else []
        if mode == "hybrid":
            ranked = self._fuse(query, qvec, vec, kw)
        else:
            ranked = ranking.single(vec or kw, "vector" if mode == "vector" else "keyword")
        return self._materialize(ranked[:k], where)

    def find_near_duplicates(self, text: str, namespace: str | None = None, threshold: float | None = None,
                             k: int = 10, exclude: Iterable[str] = (), deadline: float | None = None,
                             ) -> list[dict[str, Any]]:
        """Memories whose cosine similarity to ``text`` is at least ``threshold`` (default from settings),
        best first, ``exclude`` ids left out (e.g. the memory being checked)."""
        text, k = self._check_query(text, "text"), self._check_k(k)
        threshold = self.settings.duplicate_threshold if threshold is None else threshold
        if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not -1 <= threshold <= 1:
            raise BadRequest("threshold must be a number in [-1, 1]", details={"field": "threshold"})
        where = self._where(parse_filters({"namespace": namespace} if namespace is not None else None))
        self.maintainer.ensure_started(_wait_until(deadline))
        skip = set(exclude)
        hits = self._vector_hits(self.embedder.encode_query(text), where, k + len(skip))
        hits = [h for h in hits if h[1] >= threshold and h[0] not in skip][:k]
        rows = self.rows.fetch_rows([m for m, _ in hits], where.pinned)
        return [{"memory_id": m, "score": s, "memory": rows[m]} for m, s in hits if m in rows]

    def pack_context(self, query: str, token_budget: int, filters: Mapping[str, Any] | None = None,
                     k: int | None = None, mode: str = "hybrid", deadline: float | None = None) -> dict[str, Any]:
        """Top memories for ``query``, near-duplicates dropped, greedily packed into ``token_budget``."""
        if isinstance(token_budget, bool) or not isinstance(token_budget, int) \
                or not 1 <= token_budget <= MAX_TOKEN_BUDGET:
            raise BadRequest(f"token_budget must be an integer in 1..{MAX_TOKEN_BUDGET}",
                             details={"field": "token_budget"})
        results = self.search(query, k or self.settings.max_k, mode, filters, deadline)
        vectors = self.index.vectors([r["memory_id"] for r in results])
        items, used, dropped = ranking.pack(results, vectors, token_budget=token_budget,
                                            tokens_per_word=self.settings.tokens_per_word,
                                            duplicate_threshold=self.settings.duplicate_threshold)
        return {"query": query, "token_budget": token_budget, "tokens": used, "memories": items,
                "duplicates_dropped": dropped, "text": "\n".join(item["content"] for item in items)}

    # internals ---------------------------------------------------------------------------------
    def _with_text(self, pairs: list[tuple[str, str | None]]) -> list[tuple[str, str]]:
        """Fill missing texts from the rows' content; rows that do not exist are dropped."""
        missing = [m for m, text in pairs if text is None]
        stored = self.rows.contents(missing) if missing else {}
        filled = [(m, text if text is not None else stored.get(m)) for m, text in pairs]
        return [(m, text) for m, text in filled if text is not None]

    def _store(self, pairs: list[tuple[str, str]], vectors: np.ndarray) -> list[str]:
        """Write embeddings to SQL, then to FAISS (a crash in between is repaired by the start-up check)."""
        if not pairs:
            return []
        by_id = {m: v for (m, _), v in zip(pairs, vectors)}
        with self.write_lock:
            written = self.rows.write_embeddings(list(by_id), np.vstack(list(by_id.values())))
            if written:
                self.index.add(written, np.vstack([by_id[m] for m in written]))
        self.maintainer.changed(len(written))
        return written

    def _where(self, flt: Filters) -> Where:
        table, dialect = self.rows.table, self.rows.dialect
        return Where(flt, where_clauses(table, flt, dialect),
                     where_clauses(table, flt, dialect, use_indexes=False))

    def _vector_hits(self, qvec: np.ndarray, where: Where, n: int) -> list[tuple[str, float]]:
        if where.flt.empty:
            return self._overfetch(qvec, where, n, factor=1)
        limit = self.settings.exact_filter_max
        if self.rows.count_upto(where.scan, limit + 1) <= limit:
            return self._exact_subset(qvec, where, n)
        return self._overfetch(qvec, where, n, factor=self.settings.overfetch)

    def _overfetch(self, qvec: np.ndarray, where: Where, n: int, factor: int) -> list[tuple[str, float]]:
        total, fetch = len(self.index), n * max(1, factor)
        while True:
            hits = self.index.search(qvec, min(fetch, total))
            ok = self.rows.confirm([m for m, _ in hits], where.pinned)
            confirmed = [h for h in hits if h[0] in ok]
            if len(confirmed) >= n or fetch >= total:
                return confirmed[:n]
            fetch *= 4
            if not where.flt.empty and fetch > OVERFETCH_MAX:
                return self._exact_subset(qvec, where, n)

    def _exact_subset(self, qvec: np.ndarray, where: Where, n: int) -> list[tuple[str, float]]:
        ids, matrix = self.rows.subset_embeddings(where.scan)
        if not ids:
            return []
        scores = matrix @ qvec
        top = np.argpartition(-scores, n - 1)[:n] if len(ids) > n else np.arange(len(ids))
        top = top[np.argsort(-scores[top], kind="stable")]
        return [(ids[i], float(scores[i])) for i in top]

    def _keyword_hits(self, query: str, where: Where, n: int) -> list[tuple[str, float]]:
        with self.engine.connect() as conn:
            return keyword.search(conn, self.rows.table, query, where.scan, n, self.keyword_engine,
                                  self.settings.keyword_match_budget)

    def _fuse(self, query: str, qvec: np.ndarray, vec: list[tuple[str, float]],
              kw: list[tuple[str, float]]) -> list[ranking.Ranked]:
        """Hybrid ranking (``ranking.fuse``): cosines of keyword-only hits from the index, word coverage of
        the keyword hits from their content (only they can hold the query's words)."""
        near = {m for m, _ in vec}
        vectors = self.index.vectors([m for m, _ in kw if m not in near])
        cosines = {m: float(v @ qvec) for m, v in vectors.items()}
        terms = keyword.like_terms(query)
        contents = self.rows.contents([m for m, _ in kw]) if kw else {}
        covered = {m: ranking.coverage(terms, text) for m, text in contents.items()}
        return ranking.fuse(vec, kw, cosines, covered, keyword_weight=self.settings.keyword_weight,
                            min_coverage=self.settings.keyword_min_coverage)

    def _materialize(self, ranked: list[ranking.Ranked], where: Where) -> list[dict[str, Any]]:
        rows = self.rows.fetch_rows([r.memory_id for r in ranked], where.pinned)
        out = []
        for r in ranked:
            row = rows.get(r.memory_id)
            if row is not None and row_matches(row, where.flt):
                out.append({"memory_id": r.memory_id, "score": r.score, "vector_score": r.vector_score,
                            "keyword_score": r.keyword_score, "vector_rank": r.vector_rank, "memory": row})
        return out

    def _check_query(self, query: Any, name: str = "query") -> str:
        if not isinstance(query, str):
            raise BadRequest(f"{name} must be a string", details={"field": name})
        cleaned = "".join(ch if ch.isprintable() or ch in "\n\t" else " " for ch in query).strip()
        if not cleaned:
            raise BadRequest(f"{name} must not be empty", details={"field": name})
        if len(cleaned) > self.settings.max_query_chars:
            raise BadRequest(f"{name} longer than {self.settings.max_query_chars} characters",
                             details={"field": name})
        return cleaned

    def _check_k(self, k: Any) -> int:
        k = self.settings.default_k if k is None else k
        max_k = self.settings.max_k
        if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= max_k:
            raise BadRequest(f"k must be an integer in 1..{max_k}", details={"field": "k"})
        return k


def _wait_until(deadline: float | None) -> float | None:
    """How long a call may wait for a loading engine: its deadline less a margin for the reply."""
    if deadline is None:
        return None
    left = deadline - time.monotonic()
    return deadline - min(READY_MARGIN_S, 0.2 * max(0.0, left))


def _pair(item: Any) -> tuple[str, str | None]:
    if isinstance(item, Mapping):
        item = (item.get("memory_id"), item.get("content"))
    if not isinstance(item, (tuple, list)) or len(item) != 2:
        raise BadRequest("index_many expects (memory_id, text) pairs or dicts with memory_id")
    memory_id, text = item
    if not isinstance(memory_id, str) or not (text is None or isinstance(text, str)):
        raise BadRequest("index_many expects memory_id: str and text: str | None")
    return memory_id, text


def _snapshot_dir(path: str, data_dir: str | Path | None) -> Path | None:
    if not path:
        return None
    candidate = Path(path).expanduser()
    if candidate.is_absolute():
        return candidate
    return Path(data_dir).expanduser() / candidate if data_dir is not None else None
