"""Legacy SQLite / JSON importers: round trip, idempotency, dry run, skip report, the hub serving the data."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest
from sqlalchemy import create_engine, func, inspect, select
from sqlalchemy.orm import Session

from agents.memory_hub.stores.sql import default_database_url
from agents.memory_hub.stores.sql_models import (ContextGroup, DigitalTwin, ErrorPattern, Interaction, Memory,
                                                 MemoryGroupMapping, MemoryRelationship, PerformanceLog,
                                                 SessionSummary, TrustScore)
from migrations.legacy.common import ImportRefused
from migrations.legacy.reasoning_json import import_reasoning_json
from migrations.legacy.trust_scores import import_trust_scores
from migrations.legacy.unified_memory import import_unified_memory
from tests.ops import legacy_fixtures as fx
from tests.support.hubproc import REPO, HubProcess


def rows(url: str, model: type) -> list:
    engine = create_engine(url)
    try:
        with Session(engine) as session:
            return list(session.execute(select(model)).scalars())
    finally:
        engine.dispose()


def count(url: str, model: type) -> int:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            if not inspect(conn).has_table(model.__tablename__):
                return 0
            return conn.execute(select(func.count()).select_from(model)).scalar_one()
    finally:
        engine.dispose()


def by_table(report) -> dict:
    return {t.target: t for t in report.tables}


def test_unified_memory_round_trip(tmp_path):
    legacy = fx.build_unified_memory_db(tmp_path / "unified_memory.db")
    url = default_database_url(tmp_path / "hub")
    report = by_table(import_unified_memory(legacy, url))
    assert (report["memories"].read, report["memories"].inserted) == (8, 5)
    assert sorted(reason.split(" ")[0] for _, reason in report["memories"].skipped) == ["content", "memory_tier",
                                                                                        "metadata"]
    memories = {m.memory_id: m for m in rows(url, Memory)}
    assert set(memories) == {row[0] for row in fx.GOOD_MEMORIES}
    for (memory_id, content, kind, tier, importance, access, accessed, created, expires, meta, tags, rel,
         _parent) in fx.GOOD_MEMORIES:
        m = memories[memory_id]
        assert (m.content, m.memory_type, m.memory_tier, m.importance, m.access_count) == (content, kind, tier,
                                                                                          importance, access)
        assert (m.last_accessed_at, m.created_at, m.expires_at) == (accessed, created, expires)
        assert (m.meta, m.tags, m.relationships) == (meta, tags, rel)
        assert m.content_hash is not None and m.embedding is None
    assert memories["mem-b"].parent_id == "mem-a"
    assert memories["mem-c"].parent_id is None and memories["mem-c"].session_id == "session-42"
    assert report["memory_relationships"].inserted == 2
    assert report["memory_relationships"].skipped == [("mem-a->mem-gone", "memory mem-gone is not in the hub")]
    assert {(r.source_memory_id, r.target_memory_id, r.relationship_type, r.strength)
            for r in rows(url, MemoryRelationship)} == {tuple(r) for r in fx.RELATIONSHIPS[:2]}
    assert {(g.id, g.name, g.description) for g in rows(url, ContextGroup)} == {("1", "pets", "facts about pets"),
                                                                              ("2", "greetings", None)}
    assert {(m.memory_id, m.group_id) for m in rows(url, MemoryGroupMapping)} == {("mem-a", "1"), ("mem-b", "1")}
    assert report["memory_group_mappings"].skipped == [("mem-c@9", "context group 9 is not in the hub")]


def test_unified_memory_twice_changes_nothing_and_dry_run_writes_nothing(tmp_path):
    legacy = fx.build_unified_memory_db(tmp_path / "unified_memory.db")
    url = default_database_url(tmp_path / "hub")
    dry = import_unified_memory(legacy, url, dry_run=True)
    assert count(url, Memory) == 0
    first = import_unified_memory(legacy, url)
    assert [t.inserted for t in dry.tables] == [t.inserted for t in first.tables] == [5, 2, 2, 2]
    before = [(m.memory_id, m.updated_at, m.access_count) for m in rows(url, Memory)]
    second = import_unified_memory(legacy, url)
    assert second.changed == 0
    assert [t.unchanged for t in second.tables] == [5, 2, 2, 2]
    assert [len(t.skipped) for t in second.tables] == [len(t.skipped) for t in first.tables]
    assert [(m.memory_id, m.updated_at, m.access_count) for m in rows(url, Memory)] == before


def test_a_row_the_hub_changed_is_kept_and_reported(tmp_path):
    legacy = fx.build_unified_memory_db(tmp_path / "unified_memory.db")
    url = default_database_url(tmp_path / "hub")
    import_unified_memory(legacy, url)
    engine = create_engine(url)
    with Session(engine) as session, session.begin():
        session.get(Memory, "mem-a").access_count = 99
    engine.dispose()
    again = by_table(import_unified_memory(legacy, url))["memories"]
    [reason] = [reason for key, reason in again.skipped if key == "mem-a"]
    assert reason.startswith("already in the hub with different access_count") and "hub's copy is kept" in reason
    assert {m.memory_id: m.access_count for m in rows(url, Memory)}["mem-a"] == 99
    final = by_table(import_unified_memory(legacy, url, overwrite=True))["memories"]   # legacy still authoritative
    assert (final.updated, final.inserted, final.unchanged) == (1, 0, 4)
    assert {m.memory_id: m.access_count for m in rows(url, Memory)}["mem-a"] == 3
    assert import_unified_memory(legacy, url, overwrite=True).changed == 0


def test_trust_scores_round_trip_and_idempotent(tmp_path):
    legacy = fx.build_trust_db(tmp_path / "agent_trust_scores.db")
    url = default_database_url(tmp_path / "hub")
    report = by_table(import_trust_scores(legacy, url))
    assert (report["trust_scores"].inserted, report["performance_logs"].inserted) == (3, 4)
    assert report["performance_logs"].skipped == [("id 5", "model_id is empty")]
    scores = {s.model_id: s for s in rows(url, TrustScore)}
    for model_id, score, total, ok in fx.SCORES:
        s = scores[model_id]
        assert (s.trust_score, s.total_interactions, s.successful_interactions) == (score, total, ok)
        assert s.last_updated == fx.STAMP.timestamp()
    logs = sorted((p.model_id, p.success, p.response_time, p.timestamp) for p in rows(url, PerformanceLog))
    assert logs == sorted((m, bool(s), r, fx.STAMP.replace(second=i).timestamp())
                          for i, (m, s, r, _) in enumerate(fx.LOGS))
    again = import_trust_scores(legacy, url)
    assert again.changed == 0 and [t.unchanged for t in again.tables] == [3, 4]
    assert count(url, PerformanceLog) == 4


def test_reasoning_json_round_trip_and_idempotent(tmp_path):
    directory = fx.build_reasoning_json(tmp_path / "umra")
    url = default_database_url(tmp_path / "hub")
    report = by_table(import_reasoning_json(directory, url))
    assert report["interactions"].inserted == 3
    assert report["interactions"].skipped == [("user2_project@1752000006.0", "type or content is empty")]
    assert report["error_patterns"].inserted == 2 and report["error_patterns"].skipped == [
        ("broken", "pattern entry is not a JSON object")]
    assert report["error_patterns"].notes == ["1 history entries not imported (they repeat the patterns' additions)"]
    assert report["digital_twins"].skipped == [("user3", "twin data is not a JSON object")]
    interactions = {(i.session_id, i.interaction_type, i.content, i.timestamp): i.meta for i in rows(url, Interaction)}
    assert interactions[("user1_2025-07-10", "system_response", "It is sunny.", fx.T0 + 2)] == {"model": "phi"}
    assert ("user2_project", "code", "SELECT 1", fx.T0 + 5) in interactions
    [summary] = rows(url, SessionSummary)
    assert summary.summary == fx.SUMMARIES["user1_2025-07-10"] and summary.updated_at == fx.T0 + 3
    patterns = {p.error_type: (p.pattern, p.solution, p.occurrences, p.last_seen) for p in rows(url, ErrorPattern)}
    assert patterns == {"timeout": ("timed? ?out", "retry with backoff", 4, fx.T0),
                        "cuda_oom": ("CUDA out of memory", "unload a model", 1, fx.T0 + 9)}
    assert {t.user_id: t.twin_data for t in rows(url, DigitalTwin)} == {k: v for k, v in fx.TWINS.items()
                                                                       if isinstance(v, dict)}
    again = import_reasoning_json(directory, url)
    assert again.changed == 0 and count(url, Interaction) == 3


def test_refuses_a_file_that_is_not_the_legacy_database(tmp_path):
    legacy = fx.build_trust_db(tmp_path / "agent_trust_scores.db")
    with pytest.raises(ImportRefused, match="missing tables"):
        import_unified_memory(legacy, default_database_url(tmp_path / "hub"))
    with pytest.raises(ImportRefused, match="not found"):
        import_trust_scores(tmp_path / "nope.db", default_database_url(tmp_path / "hub"))


def test_hubctl_migrate_dry_run_json_then_real(tmp_path):
    legacy = fx.build_trust_db(tmp_path / "agent_trust_scores.db")
    data_dir = tmp_path / "memory_hub"
    base = [sys.executable, "-m", "agents.hubctl", "migrate", "trust-scores", str(legacy),
            "--data-dir", str(data_dir)]
    dry = subprocess.run([*base, "--dry-run", "--json"], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert dry.returncode == 0, dry.stderr
    report = json.loads(dry.stdout)
    assert report["dry_run"] is True and [t["inserted"] for t in report["tables"]] == [3, 4]
    assert report["tables"][1]["skipped_rows"] == [{"key": "id 5", "reason": "model_id is empty"}]
    assert count(default_database_url(data_dir), TrustScore) == 0
    real = subprocess.run(base, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert real.returncode == 0, real.stderr
    assert "inserted" in real.stdout and "model_id is empty" in real.stdout
    assert count(default_database_url(data_dir), TrustScore) == 3
    bad = subprocess.run([*base[:5], str(tmp_path / "missing.db"), "--data-dir", str(data_dir)], cwd=REPO,
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "not found" in bad.stderr


def test_memory_hub_serves_imported_data_on_legacy_ports(tmp_path):
    data_dir = tmp_path / "memory_hub"
    url = default_database_url(data_dir)
    import_trust_scores(fx.build_trust_db(tmp_path / "agent_trust_scores.db"), url)
    import_reasoning_json(fx.build_reasoning_json(tmp_path / "umra"), url)
    with HubProcess("memory_hub", data_dir) as hub:
        score = hub.legacy_request(7122, {"action": "get_trust_score", "model_id": "phi-3"})
        assert score == {"status": "success", "trust_score": 0.82}
        twin = hub.legacy_request(7105, {"action": "get_twin", "user_id": "user1"})
        assert twin == {"status": "ok", "twin": fx.TWINS["user1"]}
        solution = hub.legacy_request(7105, {"action": "get_error_solution", "error_message": "CUDA out of memory"})
        assert solution["status"] == "ok" and solution["solution"] == "unload a model"
