"""The shared memory domain (MemoryOrchestratorService's store; SessionMemoryAgent, KnowledgeBase and
MemoryClient use it too): memories with tiers and importance, access counts, parent/child trees,
relationships, context groups and batches, on SQL (the truth) with a Redis hot copy (``mem:{id}``).

Writes take column values the edges checked (``memory_records``: the native schemas and their size checks,
the legacy adapter's ``memory_values``) and trust them. Every method raises ``bus.errors`` types with
messages that read well on both wires (the legacy adapters put ``err.message`` in their ``message`` key):
``NotFound("Memory with ID X not found.")`` or a missing parent, ``Conflict`` for a taken id,
``Unavailable``/``Busy`` from the stores.

Writes are single SQL transactions (a batch is all or nothing). After the commit, each written memory is
(1) invalidated in the Redis copy (``hot_cache.HotCache``; reads that do not count an access are served
from a current copy without SQL; reads that count one are an SQL write returning the row), (2) indexed in the
search engine when there is one (removed on delete;
a failure there is logged: the engine's backfill embeds rows left without an embedding), and
(3) announced as ``memory.added`` ``{memory_id, memory_type, namespace, op}`` (op: add|update|consolidate).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any
from collections.abc import Callable, Iterable, Mapping

from sqlalchemy import delete, or_, select, update

from agents.memory_hub.hot_cache import HotCache
from agents.memory_hub.memory_records import memory_dict, stamp
from agents.memory_hub.search.filters import parse_filters, row_matches, where_clauses
from agents.memory_hub.stores.sql_models import (ContextGroup, Memory, MemoryGroupMapping, MemoryRelationship,
                                                 Session, content_hash, new_memory_id)
from bus.errors import BadRequest, Conflict, HubError, NotFound
from bus.events import NullPublisher
from bus.settings import setting

log = logging.getLogger(__name__)

@dataclass(frozen=True)
class MemorySettings:
    """The memory fields of the ``memory_orchestrator`` section (the lifecycle's are in lifecycle.py)."""

    max_content_bytes: int = setting(1 << 20, minimum=1, doc="content over this is refused (too_large)")
    max_metadata_bytes: int = setting(65536, minimum=1, doc="JSON size of metadata (and of relationships)")
    max_batch: int = setting(1000, minimum=1, maximum=1_000_000, doc="memories per batch_add / ids per batch_get")
    max_results: int = setting(1000, minimum=1, maximum=1_000_000, doc="cap of limit/k on listing and search")
    cache_ttl_s: float = setting(3600.0, minimum=1.0, doc="Redis copy mem:{memory_id} (legacy setex 3600)")
    cache_retry_s: float = setting(5.0, minimum=0.0, maximum=3600.0,
                                   doc="after a Redis failure, skip Redis this long")
    # legacy semantic actions (semantic_search, search_facts, search_interactions, get_fact) keep a hit
    # when it is among the nearest by meaning (plain vector search's top N), its words match (BM25),
    # or its cosine reaches the floor: paraphrases score 0.14-0.3 as often as unrelated memories do.
    # A nearest hit is kept only within `semantic_nearest_ratio` of the best cosine, so a small store does
    # not answer every query with its whole content (unrelated: 0.04-0.11 where the match scores 0.56-0.66)
    semantic_keep_nearest: int = setting(3, minimum=0, maximum=1000)
    semantic_nearest_ratio: float = setting(0.5, minimum=0.0, maximum=1.0)
    semantic_min_similarity: float = setting(0.25, minimum=-1.0, maximum=1.0)


def _missing(memory_id: Any) -> NotFound:
    return NotFound(f"Memory with ID {memory_id} not found.", details={"memory_id": memory_id})


def _chunks(ids: list[str], size: int = 500) -> Iterable[list[str]]:
    for start in range(0, len(ids), size):
        yield ids[start:start + size]


class Memories:
    """See module docstring. Thread-safe: every call opens its own SQL scope."""

    def __init__(self, sql: Any, redis: Any = None, search: Any = None, events: Any = None,
                 settings: MemorySettings = MemorySettings()):
        self.sql = sql
        self.search = search
        self.events = events or NullPublisher()
        self.settings = settings
        self.cache = HotCache(redis.mem if redis is not None else None, settings.cache_ttl_s,
                              settings.cache_retry_s)
        self.delete_hooks: list[Callable[[list[str]], None]] = []

    @property
    def limits(self) -> dict[str, int]:
        return {"max_content_bytes": self.settings.max_content_bytes,
                "max_metadata_bytes": self.settings.max_metadata_bytes}

    # ------------------------------------------------------------------ writes
    def add(self, values: dict[str, Any], *, replace: bool = False) -> str:
        """Insert one memory (``replace``: a given existing ``memory_id`` is overwritten, as legacy did)."""
        with self.sql.transaction() as s:
            row = self.insert(s, values, replace=replace)
            written = (row.memory_id, row.memory_type, row.namespace, row.content)
        self._after_write([written], "add")
        return written[0]

    def add_unique(self, values: dict[str, Any]) -> tuple[dict[str, Any] | None, str]:
        """``add`` unless a memory of the same namespace holds the same content (``content_hash``): then
        ``(that memory, its id)`` and nothing is written; else ``(None, new id)``. Check and insert share
        one write transaction."""
        namespace = values.get("namespace") or "default"
        with self.sql.transaction() as s:
            found = s.execute(select(Memory).where(
                Memory.namespace == namespace, Memory.content_hash == content_hash(values["content"]),
                Memory.content == values["content"]).order_by(Memory.created_at, Memory.memory_id).limit(1)
            ).scalar_one_or_none()
            if found is not None:
                return memory_dict(found), found.memory_id
            row = self.insert(s, values)
            written = (row.memory_id, row.memory_type, row.namespace, row.content)
        self._after_write([written], "add")
        return None, written[0]

    def add_many(self, rows: list[dict[str, Any]]) -> list[str]:
        """All of ``rows`` in one transaction, or none."""
        with self.sql.transaction() as s:
            written = []
            for values in rows:
                row = self.insert(s, values)     # flushed: later rows may name earlier ones as parent
                written.append((row.memory_id, row.memory_type, row.namespace, row.content))
        self._after_write(written, "add")
        return [w[0] for w in written]

    def insert(self, s: Any, values: dict[str, Any], *, replace: bool = False) -> Memory:
        """Add a row inside the caller's transaction and flush it. ``values``: column values checked at the
        edge; the columns' defaults fill the others, created/accessed/updated are stamped now unless given.
        The parent must exist; an existing ``memory_id`` is a conflict unless ``replace``."""
        now = stamp()
        values = {"created_at": now, "last_accessed_at": now, **values, "updated_at": now}
        parent = values.get("parent_id")
        if parent is not None and (parent == values.get("memory_id") or s.get(Memory, parent) is None):
            raise NotFound(f"Parent memory {parent} not found.", details={"field": "parent_id"})
        existing = s.get(Memory, values["memory_id"]) if values.get("memory_id") else None
        values["memory_id"] = values.get("memory_id") or new_memory_id()
        if existing is not None and not replace:
            raise Conflict(f"Memory with ID {values['memory_id']} already exists.",
                           details={"field": "memory_id"})
        if existing is not None:
            for column in ("expires_at", "parent_id", "session_id"):
                values.setdefault(column, None)
            values["embedding"] = None
            for key, value in values.items():
                setattr(existing, key, value)
            return existing
        row = Memory(**values)
        s.add(row)
        s.flush()
        return row

    def update(self, memory_id: str, values: dict[str, Any]) -> dict[str, Any]:
        """Set the given column values (checked at the edge); returns the memory."""
        with self.sql.transaction() as s:
            row = s.get(Memory, memory_id)
            if row is None:
                raise _missing(memory_id)
            parent = values.get("parent_id")
            if parent is not None and (parent == memory_id or s.get(Memory, parent) is None):
                raise NotFound(f"Parent memory {parent} not found.", details={"field": "parent_id"})
            changed = "content" in values and values["content"] != row.content
            for key, value in values.items():
                setattr(row, key, value)
            if changed:
                row.embedding = None
            row.updated_at = stamp()
            s.flush()
            result = memory_dict(row)
        self._after_write([(memory_id, result["memory_type"], result["namespace"],
                            result["content"] if changed else None)], "update")
        return result

    def reinforce(self, memory_id: str, factor: float) -> float:
        """importance = min(importance * factor, 1.0) (legacy ``reinforce_memory``)."""
        with self.sql.transaction() as s:
            row = s.get(Memory, memory_id)
            if row is None:
                raise _missing(memory_id)
            row.importance = max(0.0, min(row.importance * factor, 1.0))
            row.last_accessed_at = row.updated_at = stamp()
            written = (memory_id, row.memory_type, row.namespace, None)
            importance = row.importance
        self._after_write([written], "update")
        return importance

    def delete(self, memory_id: str, cascade: bool = False) -> list[str]:
        """Delete a memory (with its descendants if ``cascade``); relationships and group mappings go with
        it; children left behind lose their parent. Returns the ids deleted."""
        with self.sql.transaction() as s:
            if s.get(Memory, memory_id) is None:
                raise _missing(memory_id)
            ids = [memory_id] + (self._descendants(s, memory_id) if cascade else [])
            for chunk in _chunks(ids):
                s.execute(delete(MemoryRelationship).where(or_(MemoryRelationship.source_memory_id.in_(chunk),
                                                               MemoryRelationship.target_memory_id.in_(chunk))))
                s.execute(delete(MemoryGroupMapping).where(MemoryGroupMapping.memory_id.in_(chunk)))
                s.execute(update(Memory).where(Memory.parent_id.in_(chunk)).values(parent_id=None))
                s.execute(delete(Session).where(Session.session_id.in_(chunk)))
                s.execute(delete(Memory).where(Memory.memory_id.in_(chunk)))
        self.cache.invalidate(*ids)
        if self.search is not None:
            try:
                self.search.remove(ids)
            except Exception as exc:  # results are confirmed against SQL anyway
                log.warning("search remove failed for %d ids: %r", len(ids), exc)
        for hook in self.delete_hooks:
            hook(ids)
        return ids

    def _descendants(self, s: Any, root: str) -> list[str]:
        found: list[str] = []
        frontier = [root]
        seen = {root}
        while frontier:
            nxt: list[str] = []
            for chunk in _chunks(frontier):
                for child in s.execute(select(Memory.memory_id).where(Memory.parent_id.in_(chunk))).scalars():
                    if child not in seen:
                        seen.add(child)
                        nxt.append(child)
            found.extend(nxt)
            frontier = nxt
        return found

    # ------------------------------------------------------------------ reads
    def get(self, memory_id: str, touch: bool = True) -> dict[str, Any]:
        """One memory; ``touch`` counts the access (access_count + 1, last_accessed_at = now)."""
        found = self.get_many([memory_id], touch)
        if not found:
            raise _missing(memory_id)
        return found[0]

    def get_many(self, memory_ids: list[str], touch: bool = True) -> list[dict[str, Any]]:
        """Existing memories among ``memory_ids`` (request order, each once), accesses counted."""
        ids = list(dict.fromkeys(memory_ids))
        found = self._touch(ids) if touch else self._load(ids)
        return [found[m] for m in ids if m in found]

    def _touch(self, ids: list[str]) -> dict[str, dict]:
        """Count one access of each of ``ids`` (one UPDATE ... RETURNING per chunk) and return the rows."""
        now = stamp()
        out: dict[str, dict] = {}
        with self.sql.transaction() as s:
            for chunk in _chunks(ids):
                stmt = (update(Memory).where(Memory.memory_id.in_(chunk))
                        .values(access_count=Memory.access_count + 1, last_accessed_at=now,
                                updated_at=Memory.updated_at)
                        .returning(Memory).execution_options(synchronize_session=False))
                out.update((row.memory_id, memory_dict(row)) for row in s.scalars(stmt))
        self.cache.invalidate(*out)
        return out

    def _load(self, ids: list[str]) -> dict[str, dict]:
        """Rows of ``ids`` from their current Redis copies, the others from SQL (and copied again)."""
        out: dict[str, dict] = {}
        lookups = {}
        for memory_id in ids:
            found = self.cache.lookup(memory_id)
            if found.hit:
                out[memory_id] = found.value
            else:
                lookups[memory_id] = found
        if lookups:
            with self.sql.session() as s:
                for chunk in _chunks(list(lookups)):
                    for row in s.execute(select(Memory).where(Memory.memory_id.in_(chunk))).scalars():
                        out[row.memory_id] = memory_dict(row)
            for memory_id, found in lookups.items():
                if memory_id in out:
                    self.cache.fill(memory_id, found, out[memory_id])
        return out

    def exists(self, memory_id: str) -> bool:
        with self.sql.session() as s:
            return s.get(Memory, memory_id) is not None

    def children(self, parent_id: str, limit: int | None = None, sort_field: str = "created_at",
                 sort_order: str = "asc", newest: bool = False) -> list[dict[str, Any]]:
        """Children of ``parent_id`` sorted by ``sort_field`` (one of ``SORT_FIELDS``, checked at the edge);
        ``newest``: the last ``limit`` of that order."""
        column = getattr(Memory, sort_field)
        descending = (sort_order == "desc") != newest
        # NULLs sort as the smallest value on every database (SQLite's order; PostgreSQL's is the reverse)
        order = ((column.desc().nulls_last(), Memory.created_at.desc()) if descending
                 else (column.asc().nulls_first(), Memory.created_at.asc()))
        stmt = select(Memory).where(Memory.parent_id == parent_id).order_by(*order)
        stmt = stmt.limit(self._limit(limit))
        with self.sql.session() as s:
            rows = [memory_dict(r) for r in s.execute(stmt).scalars()]
        return rows[::-1] if newest else rows

    def text_search(self, query: str, limit: int | None = 10, filters: Mapping[str, Any] | None = None,
                    ) -> list[dict[str, Any]]:
        """Legacy ``search_memory``: content LIKE %query%, most important then most recently used first."""
        flt = parse_filters(filters)
        pattern = "%" + query.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        clauses = where_clauses(Memory.__table__, flt, self.sql.engine.dialect.name)
        stmt = (select(Memory).where(Memory.content.ilike(pattern, escape="\\"), *clauses)
                .order_by(Memory.importance.desc(), Memory.last_accessed_at.desc().nulls_last(),
                          Memory.created_at.desc())
                .limit(self._limit(limit)))
        with self.sql.session() as s:
            rows = [memory_dict(r) for r in s.execute(stmt).scalars()]
        return [r for r in rows if row_matches(r, flt)]

    def semantic_search(self, query: str, k: int | None = 5, filters: Mapping[str, Any] | None = None,
                        deadline: float | None = None, strict: bool = False, keep_nearest: int | None = None,
                        ) -> tuple[list[dict[str, Any]], str]:
        """(results, how): the search engine's hybrid ranking (each result has ``score``) when the hub
        runs one, keeping relevant hits only (among the ``keep_nearest`` nearest by meaning, default
        ``semantic_keep_nearest``; matching words; or ``semantic_min_similarity``), else the legacy
        text-search fallback (how = "text"). A loading engine is waited for until ``deadline``
        (monotonic; default: the hub's); then ``strict`` callers get its ``Unavailable``, others the fallback."""
        k = self._limit(k)
        parse_filters(filters)
        if self.search is not None:
            try:
                hits = self.search.search(query, k=min(k, self.search.settings.max_k), mode="hybrid",
                                          filters=filters, deadline=deadline)
                nearest = int(self.settings.semantic_keep_nearest if keep_nearest is None else keep_nearest)
                return [{**memory_dict(h["memory"]), "score": h["score"]} for h in self._relevant(hits, nearest)
                        ], "hybrid"
            except BadRequest:
                raise
            except HubError as exc:
                if strict:
                    raise
                log.warning("semantic search unavailable, text search instead: %s", exc)
        return self.text_search(query, k, filters), "text"

    def _relevant(self, hits: list[dict[str, Any]], nearest: int) -> list[dict[str, Any]]:
        """Hits that match words, reach the cosine floor, or are among the nearest and close to the best."""
        floor = self.settings.semantic_min_similarity
        best = max((h["vector_score"] or 0.0 for h in hits), default=0.0)
        near_floor = best * self.settings.semantic_nearest_ratio

        def relevant(hit: dict[str, Any]) -> bool:
            cosine = hit["vector_score"] or 0.0
            among_nearest = (hit["vector_rank"] or nearest + 1) <= nearest and cosine >= near_floor
            return among_nearest or hit["keyword_score"] is not None or cosine >= floor
        return [h for h in hits if relevant(h)]

    def _limit(self, limit: int | None) -> int:
        cap = self.settings.max_results
        return cap if limit is None else max(1, min(int(limit), cap))

    # ------------------------------------------------------------------ relationships and groups
    def relate(self, source_id: str, target_id: str, relationship_type: str, strength: float = 1.0) -> None:
        """Create (or re-weight) the relationship source -[type]-> target."""
        with self.sql.transaction() as s:
            for memory_id in (source_id, target_id):
                if s.get(Memory, memory_id) is None:
                    raise _missing(memory_id)
            self.link(s, source_id, target_id, relationship_type, strength)

    @staticmethod
    def link(s: Any, source_id: str, target_id: str, relationship_type: str, strength: float) -> None:
        existing = s.execute(select(MemoryRelationship).where(
            MemoryRelationship.source_memory_id == source_id, MemoryRelationship.target_memory_id == target_id,
            MemoryRelationship.relationship_type == relationship_type)).scalar_one_or_none()
        if existing is not None:
            existing.strength, existing.updated_at = strength, stamp()
        else:
            now = stamp()
            s.add(MemoryRelationship(source_memory_id=source_id, target_memory_id=target_id,
                                     relationship_type=relationship_type, strength=strength,
                                     created_at=now, updated_at=now))

    def related(self, memory_id: str, relationship_type: str | None = None) -> list[dict[str, Any]]:
        """Legacy ``related_memories`` items: ``{relationship:{type,strength,created_at}, memory:{...}}``."""
        r = MemoryRelationship
        stmt = (select(r.relationship_type, r.strength, r.created_at, Memory.memory_id, Memory.content,
                       Memory.memory_type, Memory.memory_tier, Memory.importance)
                .join(Memory, Memory.memory_id == r.target_memory_id)
                .where(r.source_memory_id == memory_id).order_by(r.created_at, r.id))
        if relationship_type is not None:
            stmt = stmt.where(r.relationship_type == relationship_type)
        with self.sql.session() as s:
            rows = s.execute(stmt).all()
        return [{"relationship": {"type": t, "strength": st, "created_at": ca},
                 "memory": {"memory_id": m, "content": c, "memory_type": mt, "memory_tier": tier, "importance": imp}}
                for t, st, ca, m, c, mt, tier, imp in rows]

    def create_group(self, name: str, description: str | None = None) -> str:
        now = stamp()
        with self.sql.transaction() as s:
            group = ContextGroup(name=name, description=description, created_at=now, updated_at=now)
            s.add(group)
            s.flush()
            return group.id

    def add_to_group(self, memory_id: str, group_id: str) -> bool:
        """Map a memory into a group; False when it already was."""
        with self.sql.transaction() as s:
            if s.get(Memory, memory_id) is None:
                raise _missing(memory_id)
            self._group(s, group_id)
            if s.execute(select(MemoryGroupMapping.id).where(MemoryGroupMapping.memory_id == memory_id,
                                                             MemoryGroupMapping.group_id == group_id)).first():
                return False
            s.add(MemoryGroupMapping(memory_id=memory_id, group_id=group_id, created_at=stamp()))
            return True

    def group_memories(self, group_id: str, limit: int | None = None) -> list[dict[str, Any]]:
        """The memories of a group, in the order they were added."""
        with self.sql.session() as s:
            self._group(s, group_id)
            stmt = (select(Memory).join(MemoryGroupMapping, MemoryGroupMapping.memory_id == Memory.memory_id)
                    .where(MemoryGroupMapping.group_id == group_id)
                    .order_by(MemoryGroupMapping.created_at, MemoryGroupMapping.id).limit(self._limit(limit)))
            return [memory_dict(r) for r in s.execute(stmt).scalars()]

    @staticmethod
    def _group(s: Any, group_id: str) -> ContextGroup:
        group = s.get(ContextGroup, group_id)
        if group is None:
            raise NotFound(f"Context group {group_id} not found.", details={"group_id": group_id})
        return group

    # ------------------------------------------------------------------ after a commit
    def _after_write(self, written: list[tuple[str, str, str, str | None]], op: str) -> None:
        """``written``: (memory_id, memory_type, namespace, content to index or None)."""
        self.cache.invalidate(*[w[0] for w in written])
        to_index = [(w[0], w[3]) for w in written if w[3] is not None]
        if to_index and self.search is not None:
            try:
                self.search.index_many(to_index)
            except Exception as exc:  # the engine's backfill embeds rows left without an embedding
                log.warning("search indexing of %d memories failed: %r", len(to_index), exc)
        for memory_id, memory_type, namespace, _ in written:
            self.events.publish("memory.added", {"memory_id": memory_id, "memory_type": memory_type,
                                                 "namespace": namespace, "op": op})
