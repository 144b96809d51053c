"""FAISS inner-product index over unit vectors, keyed by ``memory_id``.

* Small sets use an exact ``IndexFlatIP``; above ``hnsw_threshold`` live vectors the index is an
  ``IndexHNSWFlat`` (``METRIC_INNER_PRODUCT``) with a configurable ``efSearch``.
* FAISS labels are positions ``0..ntotal-1``; ``labels[pos]`` is the ``memory_id`` (``None`` once removed).
  HNSW cannot remove vectors, so a removal or an update leaves a tombstone that searches skip (they
  over-fetch, doubling until k live hits); ``compact()`` rebuilds from the live vectors once tombstones
  exceed ``compact_ratio`` of the index, while searches and writes continue on the old index.
* ``save``/``load``: a snapshot directory (``index.faiss``, ``labels.json``, ``meta.json``); the meta file
  is written last and holds the sha256 of the two others, the counts and a caller-supplied
  fingerprint of the SQL state it was taken from. ``load`` returns ``None`` for any mismatch.
"""
from __future__ import annotations

import hashlib
import json
import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any
from collections.abc import Iterable, Sequence

import faiss
import numpy as np

if TYPE_CHECKING:
    from agents.memory_hub.search.settings import SearchSettings

FORMAT = 1
BUILD_THREADS = os.cpu_count() or 1


def _omp_threads(count: int) -> None:
    """FAISS's OpenMP team size for the calling thread only (the setting is per thread).

    Searches and small incremental adds use 1 thread: as fast, and a team of 2 stalls (p95 x20) whenever
    another process holds a core. Whole-index builds use every core.
    """
    faiss.omp_set_num_threads(count)


class VectorIndex:
    """Thread-safe id-keyed FAISS index (see module docstring)."""

    def __init__(self, dim: int = 384, *, hnsw_threshold: int = 20000, hnsw_m: int = 32,
                 ef_construction: int = 160, ef_search: int = 128, compact_ratio: float = 0.2):
        self.dim = dim
        self.hnsw_threshold = hnsw_threshold
        self.hnsw_m = hnsw_m
        self.ef_construction = ef_construction
        self.ef_search = ef_search
        self.compact_ratio = compact_ratio
        self._lock = threading.RLock()
        self._compact_lock = threading.Lock()
        self._oplog: list[tuple] | None = None
        self._index, self._labels, self._pos = self._new_index("flat"), [], {}

    @classmethod
    def from_settings(cls, section: SearchSettings, dim: int = 384) -> VectorIndex:
        return cls(dim, hnsw_threshold=section.hnsw_threshold, hnsw_m=section.hnsw_m,
                   ef_construction=section.ef_construction, ef_search=section.ef_search,
                   compact_ratio=section.compact_ratio)

    # introspection -----------------------------------------------------------------------------
    @property
    def kind(self) -> str:
        return "hnsw" if isinstance(self._index, faiss.IndexHNSW) else "flat"

    def __len__(self) -> int:
        return len(self._pos)

    def __contains__(self, memory_id: str) -> bool:
        return memory_id in self._pos

    @property
    def tombstones(self) -> int:
        return len(self._labels) - len(self._pos)

    def ids(self) -> list[str]:
        with self._lock:
            return list(self._pos)

    def stats(self) -> dict[str, Any]:
        return {"kind": self.kind, "live": len(self), "tombstones": self.tombstones,
                "ef_search": self.ef_search if self.kind == "hnsw" else None}

    # writes ------------------------------------------------------------------------------------
    def rebuild(self, ids: Sequence[str], vectors: np.ndarray) -> None:
        """Replace the whole content (kind chosen from the size)."""
        vectors = self._check(ids, vectors)
        index, labels, pos = self._build(list(ids), vectors)
        with self._lock:
            self._index, self._labels, self._pos = index, labels, pos

    def add(self, ids: Sequence[str], vectors: np.ndarray) -> None:
        """Insert or replace vectors (an existing id is tombstoned and re-added)."""
        vectors = self._check(ids, vectors)
        if not len(ids):
            return
        ids, vectors = _last_wins(list(ids), vectors)
        with self._lock:
            if self._oplog is not None:
                self._oplog.append(("add", ids, vectors))
            if self.kind == "flat" and len(self._pos) + len(ids) > self.hnsw_threshold:
                self._promote(ids, vectors)
                return
            self._apply_add(self._index, self._labels, self._pos, ids, vectors)

    def remove(self, ids: Iterable[str]) -> int:
        """Tombstone ``ids``; returns how many were present."""
        ids = list(ids)
        with self._lock:
            if self._oplog is not None:
                self._oplog.append(("remove", ids))
            return _apply_remove(self._labels, self._pos, ids)

    # reads -------------------------------------------------------------------------------------
    def search(self, query: np.ndarray, k: int) -> list[tuple[str, float]]:
        """Up to ``k`` live ``(memory_id, cosine)`` pairs, best first."""
        if k <= 0:
            return []
        query = np.ascontiguousarray(query, dtype=np.float32).reshape(1, self.dim)
        _omp_threads(1)
        with self._lock:
            total = self._index.ntotal
            fetch = min(total, 2 * k if self.tombstones else k)    # doubled below while tombstones crowd out hits
            while fetch > 0:
                hits, skipped = self._raw_search(query, fetch)
                if len(hits) >= k or fetch >= total or not skipped:
                    return hits[:k]
                fetch = min(total, fetch * 2)
        return []

    def vectors(self, ids: Sequence[str]) -> dict[str, np.ndarray]:
        """The stored vectors of the live ``ids`` that are present."""
        with self._lock:
            found = [(m, self._pos[m]) for m in ids if m in self._pos]
            return {m: self._index.reconstruct(int(p)) for m, p in found}

    # maintenance -------------------------------------------------------------------------------
    def needs_compaction(self) -> bool:
        dead, total = self.tombstones, len(self._labels)
        wrong_kind = (self.kind == "hnsw") != (len(self._pos) > self.hnsw_threshold)
        return total > 0 and (dead > self.compact_ratio * total or (wrong_kind and dead > 0))

    def compact(self) -> bool:
        """Rebuild from live vectors without blocking readers for the build; False if already running."""
        if not self._compact_lock.acquire(blocking=False):
            return False
        try:
            with self._lock:
                ids = list(self._pos)
                vectors = self._reconstruct([self._pos[m] for m in ids])
                self._oplog = []
            index, labels, pos = self._build(ids, vectors)
            with self._lock:
                for op in self._oplog:
                    if op[0] == "add":
                        self._apply_add(index, labels, pos, op[1], op[2])
                    else:
                        _apply_remove(labels, pos, op[1])
                self._index, self._labels, self._pos, self._oplog = index, labels, pos, None
            return True
        finally:
            with self._lock:
                self._oplog = None
            self._compact_lock.release()

    # snapshot ----------------------------------------------------------------------------------
    def save(self, directory: str | os.PathLike, fingerprint: dict[str, Any]) -> None:
        """Write a snapshot atomically (meta.json last, as the commit point)."""
        folder = Path(directory)
        folder.mkdir(parents=True, exist_ok=True)
        with self._lock:
            blob = faiss.serialize_index(self._index).tobytes()
            labels = json.dumps(self._labels).encode()
            meta = {"format": FORMAT, "dim": self.dim, "kind": self.kind, "ntotal": len(self._labels),
                    "live": len(self._pos), "fingerprint": fingerprint,
                    "sha256": {"index.faiss": _sha(blob), "labels.json": _sha(labels)}}
        (folder / "meta.json").unlink(missing_ok=True)
        _write_atomic(folder / "index.faiss", blob)
        _write_atomic(folder / "labels.json", labels)
        _write_atomic(folder / "meta.json", json.dumps(meta, sort_keys=True).encode())

    def load(self, directory: str | os.PathLike) -> dict[str, Any] | None:
        """Load a snapshot; returns its fingerprint, or None (index unchanged) if absent or corrupt."""
        folder = Path(directory)
        try:
            meta = json.loads((folder / "meta.json").read_bytes())
            blob = (folder / "index.faiss").read_bytes()
            labels_raw = (folder / "labels.json").read_bytes()
        except (OSError, ValueError):
            return None
        sums = meta.get("sha256", {})
        if (meta.get("format") != FORMAT or meta.get("dim") != self.dim
                or sums.get("index.faiss") != _sha(blob) or sums.get("labels.json") != _sha(labels_raw)):
            return None
        try:
            index = faiss.deserialize_index(np.frombuffer(blob, dtype=np.uint8))
            labels = json.loads(labels_raw)
        except (RuntimeError, ValueError):
            return None
        pos = {m: i for i, m in enumerate(labels) if m is not None}
        if index.ntotal != len(labels) or len(labels) != meta.get("ntotal") or len(pos) != meta.get("live"):
            return None
        if isinstance(index, faiss.IndexHNSW):
            index.hnsw.efSearch = self.ef_search
        with self._lock:
            self._index, self._labels, self._pos = index, labels, pos
        return meta.get("fingerprint")

    # internals ---------------------------------------------------------------------------------
    def _check(self, ids: Sequence[str], vectors: np.ndarray) -> np.ndarray:
        vectors = np.ascontiguousarray(vectors, dtype=np.float32).reshape(-1, self.dim)
        if len(ids) != len(vectors):
            raise ValueError(f"{len(ids)} ids for {len(vectors)} vectors")
        return vectors

    def _new_index(self, kind: str) -> faiss.Index:
        if kind == "flat":
            return faiss.IndexFlatIP(self.dim)
        index = faiss.IndexHNSWFlat(self.dim, self.hnsw_m, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = self.ef_construction
        index.hnsw.efSearch = self.ef_search
        return index

    def _build(self, ids: list[str], vectors: np.ndarray) -> tuple[faiss.Index, list, dict]:
        ids, vectors = _last_wins(ids, vectors)
        index = self._new_index("hnsw" if len(ids) > self.hnsw_threshold else "flat")
        if len(ids):
            _omp_threads(BUILD_THREADS)
            index.add(vectors)
        return index, list(ids), {m: i for i, m in enumerate(ids)}

    def _promote(self, ids: list[str], vectors: np.ndarray) -> None:
        """Switch flat -> HNSW when a write crosses the threshold (caller holds the lock)."""
        _apply_remove(self._labels, self._pos, ids)
        keep = list(self._pos)
        old = self._reconstruct([self._pos[m] for m in keep])
        self._index, self._labels, self._pos = self._build(keep + ids, np.vstack([old, vectors]))

    def _apply_add(self, index: faiss.Index, labels: list, pos: dict, ids: list[str],
                   vectors: np.ndarray) -> None:
        _apply_remove(labels, pos, ids)
        start = index.ntotal
        _omp_threads(1)
        index.add(vectors)
        for offset, memory_id in enumerate(ids):
            labels.append(memory_id)
            pos[memory_id] = start + offset

    def _reconstruct(self, positions: list[int]) -> np.ndarray:
        if not positions:
            return np.zeros((0, self.dim), dtype=np.float32)
        everything = self._index.reconstruct_n(0, self._index.ntotal)
        return np.ascontiguousarray(everything[np.asarray(positions, dtype=np.int64)])

    def _raw_search(self, query: np.ndarray, fetch: int) -> tuple[list[tuple[str, float]], int]:
        """Live hits, and how many tombstones were skipped (HNSW may return fewer than ``fetch``)."""
        scores, positions = self._index.search(query, fetch)
        labels = self._labels
        hits = []
        skipped = 0
        for score, p in zip(scores[0].tolist(), positions[0].tolist()):
            if p < 0:
                break
            if labels[p] is None:
                skipped += 1
            else:
                hits.append((labels[p], score))
        return hits, skipped


def _apply_remove(labels: list, pos: dict, ids: Iterable[str]) -> int:
    removed = 0
    for memory_id in ids:
        p = pos.pop(memory_id, None)
        if p is not None:
            labels[p] = None
            removed += 1
    return removed


def _last_wins(ids: list[str], vectors: np.ndarray) -> tuple[list[str], np.ndarray]:
    """Drop earlier duplicates of an id within one batch."""
    if len(set(ids)) == len(ids):
        return ids, vectors
    last = {m: i for i, m in enumerate(ids)}
    keep = sorted(last.values())
    return [ids[i] for i in keep], vectors[keep]


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
