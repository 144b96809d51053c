"""MemoryOrchestratorService's memory lifecycle (legacy-protocol.md §1.4), run by a background thread.

Each pass visits every memory, in batches of ``lifecycle_batch`` rows per SQL transaction:

* decay: ``importance *= (1 - rate * age_days)`` clamped to [0, 1], ``age_days`` since ``created_at``,
  ``rate`` by tier (``decay_rates``: short 0.10, medium 0.05, long 0.01);
* short -> medium when importance < ``short_to_medium_below`` (0.4). With at least
  ``consolidate_min_related`` (3) related memories (siblings under the same parent, plus targets of its
  relationships) a ``consolidated`` memory (tier medium, importance 0.7, metadata ``consolidated_from``,
  ``consolidation_date``) is created and linked ``consolidated_into``; a memory already listed in an
  existing consolidation is linked to that one instead of creating another. Without consolidation the
  content is summarized (legacy: > 200 characters become ``"Summary: <first 100>... (length: N)"``);
* medium -> long when importance < ``medium_to_long_below`` (0.2), content summarized.

``summarize_on_promotion: false`` keeps contents intact. Promotions and consolidations are announced as
``memory.added`` and re-indexed; plain decay is not announced (it touches every row every pass).
"""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select

from agents.memory_hub.memories import Memories
from agents.memory_hub.memory_records import stamp
from agents.memory_hub.stores.sql_models import Memory, MemoryRelationship
from bus.periodic import PeriodicTask
from bus.settings import setting

log = logging.getLogger(__name__)

@dataclass(frozen=True)
class DecayRates:
    """Importance lost per day of age, by tier."""

    short: float = setting(0.10, minimum=0.0, maximum=1.0)
    medium: float = setting(0.05, minimum=0.0, maximum=1.0)
    long: float = setting(0.01, minimum=0.0, maximum=1.0)


@dataclass(frozen=True)
class LifecycleSettings:
    """The lifecycle fields of the ``memory_orchestrator`` section (the memory fields are in memories.py)."""

    lifecycle_enabled: bool = True
    lifecycle_interval_s: float = setting(3600.0, minimum=0.01, maximum=30 * 86400.0,
                                          doc="legacy LIFECYCLE_INTERVAL; the first pass runs one interval "
                                              "after start")
    decay_rates: DecayRates = field(default_factory=DecayRates)
    short_to_medium_below: float = setting(0.4, minimum=0.0, maximum=1.0)
    medium_to_long_below: float = setting(0.2, minimum=0.0, maximum=1.0)
    consolidate_min_related: int = setting(3, minimum=1)
    consolidated_importance: float = setting(0.7, minimum=0.0, maximum=1.0)
    summarize_on_promotion: bool = True
    lifecycle_batch: int = setting(500, minimum=1, maximum=1_000_000,
                                   doc="rows per transaction (writers wait at most one batch)")
DAY_S = 86400.0


def summarize(content: str) -> str:
    """The legacy ``_summarize_content``."""
    if len(content) > 200:
        return f"Summary: {content[:100]}... (length: {len(content)})"
    return content


class Lifecycle:
    """``run_once(now)`` does one pass; ``start()``/``stop()`` run it every ``lifecycle_interval_s``."""

    def __init__(self, memories: Memories, settings: LifecycleSettings = LifecycleSettings()):
        self.memories = memories
        self.settings = settings
        self.rates = vars(settings.decay_rates)
        self._lock = threading.Lock()
        self._task = PeriodicTask("memory-lifecycle", self.settings.lifecycle_interval_s, self.run_once,
                                  when=memories.sql.is_leader)      # one replica at a time
        self.last_run: dict[str, Any] | None = None

    # ------------------------------------------------------------------ background task
    def start(self) -> None:
        if self.settings.lifecycle_enabled:
            self._task.start()

    def stop(self) -> None:
        self._task.stop()

    @property
    def alive(self) -> bool:
        return self._task.alive

    # ------------------------------------------------------------------ one pass
    def run_once(self, now: float | None = None) -> dict[str, Any]:
        """One pass over every memory; returns counts."""
        with self._lock:
            now = time.time() if now is None else now
            stats = {"processed": 0, "decayed": 0, "to_medium": 0, "to_long": 0, "consolidated": 0,
                     "started_at": now}
            created: set[str] = set()
            cursor = ""
            while True:
                promoted: list[tuple[str, str, str, str | None]] = []
                new: list[tuple[str, str, str, str | None]] = []
                with self.memories.sql.transaction() as s:
                    rows = s.execute(select(Memory).where(Memory.memory_id > cursor).order_by(Memory.memory_id)
                                     .limit(self.settings.lifecycle_batch)).scalars().all()
                    for row in rows:
                        if row.memory_id not in created:
                            self._apply(s, row, now, stats, promoted, new)
                    created.update(n[0] for n in new)
                if not rows:
                    break
                cursor = rows[-1].memory_id
                self.memories._after_write(new, "consolidate")
                self.memories._after_write(promoted, "update")
            stats["finished_at"] = time.time()
            self.last_run = stats
            log.info("memory lifecycle pass: %s", stats)
            return stats

    def _apply(self, s: Any, row: Memory, now: float, stats: dict, promoted: list, new: list) -> None:
        stats["processed"] += 1
        age_days = max(0.0, (now - row.created_at) / DAY_S)
        rate = float(self.rates.get(row.memory_tier, self.rates["medium"]))
        importance = max(0.0, min(1.0, row.importance * (1.0 - rate * age_days)))
        content_before, tier_before = row.content, row.memory_tier
        if importance != row.importance:
            row.importance = importance
            stats["decayed"] += 1
        if row.memory_tier == "short" and importance < self.settings.short_to_medium_below:
            row.memory_tier = "medium"
            stats["to_medium"] += 1
            target = self._consolidate(s, row, stats, new)
            if target is None:
                row.content = self._summary(row.content)
        elif row.memory_tier == "medium" and importance < self.settings.medium_to_long_below:
            row.memory_tier = "long"
            stats["to_long"] += 1
            row.content = self._summary(row.content)
        if s.is_modified(row):
            row.updated_at = stamp()
            if row.content != content_before:
                row.embedding = None
        if row.memory_tier != tier_before:
            promoted.append((row.memory_id, row.memory_type, row.namespace,
                             row.content if row.content != content_before else None))

    def _summary(self, content: str) -> str:
        return summarize(content) if self.settings.summarize_on_promotion else content

    def _related(self, s: Any, row: Memory) -> list[Memory]:
        found: dict[str, Memory] = {}
        if row.parent_id is not None:
            for sibling in s.execute(select(Memory).where(Memory.parent_id == row.parent_id,
                                                          Memory.memory_id != row.memory_id)).scalars():
                found[sibling.memory_id] = sibling
        targets = select(MemoryRelationship.target_memory_id).where(
            MemoryRelationship.source_memory_id == row.memory_id,
            MemoryRelationship.relationship_type != "consolidated_into")
        for other in s.execute(select(Memory).where(Memory.memory_id.in_(targets))).scalars():
            if other.memory_id != row.memory_id:
                found[other.memory_id] = other
        return list(found.values())

    def _consolidate(self, s: Any, row: Memory, stats: dict, new: list) -> str | None:
        """Link ``row`` into a consolidation (existing or new); None when it has too few related memories."""
        related = self._related(s, row)
        if len(related) < self.settings.consolidate_min_related:
            return None
        target = self._existing_consolidation(s, row, [m.memory_id for m in related])
        if target is None:
            contents = [row.content] + [m.content for m in related]
            values = {"content": summarize("\n\n".join(contents)), "memory_type": "consolidated",
                      "memory_tier": "medium", "importance": self.settings.consolidated_importance,
                      "namespace": row.namespace,
                      "meta": {"consolidated_from": [row.memory_id] + [m.memory_id for m in related],
                               "consolidation_date": time.time()}}
            consolidated = self.memories.insert(s, values)
            s.flush()
            target = consolidated.memory_id
            stats["consolidated"] += 1
            new.append((target, "consolidated", consolidated.namespace, consolidated.content))
        Memories.link(s, row.memory_id, target, "consolidated_into", 1.0)
        return target

    @staticmethod
    def _existing_consolidation(s: Any, row: Memory, related_ids: list[str]) -> str | None:
        stmt = select(Memory).where(Memory.memory_type == "consolidated", Memory.memory_id.in_(
            select(MemoryRelationship.target_memory_id).where(
                MemoryRelationship.source_memory_id.in_(related_ids),
                MemoryRelationship.relationship_type == "consolidated_into")))
        for candidate in s.execute(stmt).scalars():
            if row.memory_id in (candidate.meta or {}).get("consolidated_from", []):
                return candidate.memory_id
        return None
