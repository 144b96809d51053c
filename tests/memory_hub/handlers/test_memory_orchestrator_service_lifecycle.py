"""The memory lifecycle of MemoryOrchestratorService on a real migrated SQLite: decay by tier, promotions,
summaries, consolidation of related memories (once per group), the background task and its settings.
"""
from __future__ import annotations

import time

import pytest
from sqlalchemy import select

from agents.memory_hub.handlers.memory_orchestrator_service import MemoryOrchestratorService
from agents.memory_hub.lifecycle import summarize
from agents.memory_hub.stores.sql_models import Memory, MemoryRelationship
from bus.handler import CallContext

DAY = 86400.0


@pytest.fixture
def make(compose_hub):
    def make(sql_store, **section) -> MemoryOrchestratorService:
        return compose_hub(sql_store, memory_orchestrator=section).handler(MemoryOrchestratorService)
    return make


@pytest.fixture
def mos(make, sql_store) -> MemoryOrchestratorService:
    return make(sql_store)


def add(mos, content="x", **fields) -> str:
    return mos.memories.add({"content": content, **fields})


def row(mos, memory_id) -> dict:
    return mos.memories.get(memory_id, touch=False)


def test_decay_by_tier(mos):
    t0 = time.time()
    ids = {tier: add(mos, tier, memory_tier=tier, importance=1.0, created_at=t0)
           for tier in ("short", "medium", "long")}
    stats = mos.lifecycle.run_once(t0 + 2 * DAY)
    assert stats["processed"] == 3 and stats["decayed"] == 3
    assert row(mos, ids["short"])["importance"] == pytest.approx(0.8)     # 1 - 0.10 * 2
    assert row(mos, ids["medium"])["importance"] == pytest.approx(0.9)    # 1 - 0.05 * 2
    assert row(mos, ids["long"])["importance"] == pytest.approx(0.98)     # 1 - 0.01 * 2
    assert {row(mos, i)["memory_tier"] for i in ids.values()} == {"short", "medium", "long"}


def test_decay_is_clamped_at_zero(mos):
    t0 = time.time()
    memory_id = add(mos, memory_tier="short", importance=0.9, created_at=t0)
    mos.lifecycle.run_once(t0 + 30 * DAY)
    memory = row(mos, memory_id)
    assert memory["importance"] == 0.0 and memory["memory_tier"] == "medium"
    mos.lifecycle.run_once(t0 + 30 * DAY)
    assert row(mos, memory_id)["memory_tier"] == "long"


def test_short_to_medium_summarizes_without_consolidation(mos):
    t0 = time.time()
    long_text = "word " * 60
    memory_id = add(mos, long_text, importance=0.41, created_at=t0)
    stats = mos.lifecycle.run_once(t0 + 1 * DAY)                          # 0.41 * 0.9 = 0.369 < 0.4
    memory = row(mos, memory_id)
    assert memory["memory_tier"] == "medium" and memory["importance"] == pytest.approx(0.369)
    assert memory["content"] == f"Summary: {long_text[:100]}... (length: {len(long_text)})"
    assert stats["to_medium"] == 1 and stats["consolidated"] == 0
    assert ("memory.added", {"memory_id": memory_id, "memory_type": "general", "namespace": "default",
                             "op": "update"}) in mos.events.events


def test_medium_to_long(mos):
    t0 = time.time()
    memory_id = add(mos, "y" * 300, memory_tier="medium", importance=0.21, created_at=t0)
    stats = mos.lifecycle.run_once(t0 + 1 * DAY)                          # 0.21 * 0.95 < 0.2
    memory = row(mos, memory_id)
    assert memory["memory_tier"] == "long" and memory["content"] == summarize("y" * 300)
    assert stats["to_long"] == 1
    assert row(mos, add(mos, "short text", memory_tier="medium", importance=0.1))["content"] == "short text"


def test_consolidation_of_siblings_happens_once_per_group(mos, sql_store):
    t0 = time.time()
    parent = add(mos, "session", importance=1.0, created_at=t0)
    kids = [add(mos, f"interaction {i}", parent_id=parent, importance=0.3, created_at=t0) for i in range(4)]
    stats = mos.lifecycle.run_once(t0 + 1 * DAY)
    assert stats["consolidated"] == 1 and stats["to_medium"] == 4
    with sql_store.session() as s:
        consolidated = s.execute(select(Memory).where(Memory.memory_type == "consolidated")).scalars().all()
        links = s.execute(select(MemoryRelationship.source_memory_id, MemoryRelationship.target_memory_id)
                          .where(MemoryRelationship.relationship_type == "consolidated_into")).all()
    assert len(consolidated) == 1
    summary = consolidated[0]
    assert summary.memory_tier == "medium" and summary.importance == 0.7
    assert sorted(summary.meta["consolidated_from"]) == sorted(kids)
    assert "consolidation_date" in summary.meta
    assert sorted(source for source, _ in links) == sorted(kids)
    assert {target for _, target in links} == {summary.memory_id}
    for kid in kids:
        memory = row(mos, kid)
        assert memory["memory_tier"] == "medium" and memory["content"].startswith("interaction")
    assert row(mos, parent)["memory_tier"] == "short"
    assert ("memory.added", {"memory_id": summary.memory_id, "memory_type": "consolidated", "namespace": "default",
                             "op": "consolidate"}) in mos.events.events
    assert mos.lifecycle.run_once(t0 + 1 * DAY)["consolidated"] == 0


def test_consolidation_through_explicit_relationships(mos):
    t0 = time.time()
    hub = add(mos, "hub", importance=0.3, created_at=t0)
    for i in range(3):
        mos.memories.relate(hub, add(mos, f"spoke {i}", memory_tier="long", created_at=t0), "mentions")
    assert mos.lifecycle.run_once(t0 + 1 * DAY)["consolidated"] == 1
    assert row(mos, hub)["memory_tier"] == "medium"
    related = mos.memories.related(hub, "consolidated_into")
    assert len(related) == 1 and related[0]["memory"]["memory_type"] == "consolidated"


def test_two_related_memories_are_not_enough(mos):
    t0 = time.time()
    parent = add(mos, "p", importance=1.0, created_at=t0)
    kids = [add(mos, "z" * 250, parent_id=parent, importance=0.3, created_at=t0) for _ in range(3)]
    assert mos.lifecycle.run_once(t0 + DAY)["consolidated"] == 0
    assert row(mos, kids[0])["content"].startswith("Summary: ")


def test_settings_change_rates_thresholds_and_summaries(make, tmp_path, sql_store):
    mos = make(sql_store, decay_rates={"short": 0.5}, short_to_medium_below=0.6,
               summarize_on_promotion=False)
    t0 = time.time()
    memory_id = add(mos, "q" * 300, importance=1.0, created_at=t0)
    mos.lifecycle.run_once(t0 + 1 * DAY)
    memory = row(mos, memory_id)
    assert memory["importance"] == pytest.approx(0.5) and memory["memory_tier"] == "medium"
    assert memory["content"] == "q" * 300
    assert mos.lifecycle.rates["medium"] == 0.05


def test_native_run_lifecycle_and_batches(make, tmp_path, sql_store):
    mos = make(sql_store, lifecycle_batch=2)
    t0 = time.time()
    for i in range(5):
        add(mos, f"m{i}", importance=0.5, created_at=t0)
    spec, fn = mos.action_table()["run_lifecycle"]
    stats = fn(spec.schema.validate({"now": t0 + 3 * DAY}), CallContext(agent=mos.name, action="run_lifecycle"))
    assert stats["processed"] == 5 and stats["to_medium"] == 5          # 0.5 * 0.7 = 0.35


def test_background_task_runs_at_the_configured_interval(make, tmp_path, sql_store):
    mos = make(sql_store, lifecycle_interval_s=0.05)
    add(mos, "tick")
    mos.start()
    try:
        deadline = time.monotonic() + 20
        while mos.lifecycle.last_run is None and time.monotonic() < deadline:
            time.sleep(0.02)
        assert mos.lifecycle.last_run is not None and mos.lifecycle.last_run["processed"] == 1
        assert mos.health_checks()["memory_lifecycle"][0] is True
    finally:
        mos.stop()
    assert not mos.lifecycle.alive


def test_disabled_task_does_not_start(make, tmp_path, sql_store):
    mos = make(sql_store, lifecycle_enabled=False)
    mos.start()
    assert not mos.lifecycle.alive and mos.health_checks()["memory_lifecycle"][0] is True
    mos.stop()


def test_summarize_is_the_legacy_rule():
    assert summarize("short") == "short"
    assert summarize("a" * 200) == "a" * 200
    assert summarize("b" * 201) == f"Summary: {'b' * 100}... (length: 201)"
