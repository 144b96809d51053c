"""Filters are applied in SQL, on both query plans (exact subset search and FAISS over-fetch)."""
from __future__ import annotations

import time

import pytest

from agents.memory_hub.search import SearchEngine
from agents.memory_hub.search.settings import SearchSettings
from agents.memory_hub.stores.sql import SqlStore
from bus.errors import BadRequest
from tests.memory_hub.search.corpus import insert_rows, memory_row, sentences

NOW = time.time()


def _rows() -> list[dict]:
    texts = sentences(240, seed=5)
    rows = [memory_row("Root of a memory tree.", memory_id="p-root", namespace="other")]
    for i, text in enumerate(texts):
        rows.append(memory_row(
            text, memory_id=f"m{i:03d}", namespace="work" if i % 3 == 0 else "home",
            memory_type=("interaction", "knowledge_fact", "general")[i % 3 if i % 2 else 2],
            session_id=f"s{i % 8}", parent_id="p-root" if i % 10 == 0 else None,
            tags=["a", "b"] if i % 4 == 0 else (["a"] if i % 4 == 1 else ["b"]),
            importance=(i % 10) / 10, created_at=NOW - 86400 * (i % 30)))
    rows.append(memory_row("Dana left the passport in the office.", memory_id="expired", expires_at=NOW - 60))
    return rows


@pytest.fixture(scope="module")
def populated(module_sql_url, embedder):
    """One migrated database (per backend) with the rows above, embedded once for the whole module (read-only
    tests)."""
    store = SqlStore(module_sql_url)
    rows = _rows()
    insert_rows(store.engine, rows)
    indexer = SearchEngine(store, embedder, SearchSettings(maintenance_interval_s=0, snapshot_path=""))
    indexer.index_many([(r["memory_id"], None) for r in rows])
    yield store
    store.close()


@pytest.fixture(scope="module", params=["exact", "overfetch"])
def engine(request, populated, embedder):
    # exact_filter_max=0 forces the FAISS over-fetch plan for every filtered query
    search = SearchEngine(populated, embedder, SearchSettings(
        maintenance_interval_s=0, snapshot_path="", exact_filter_max=4000 if request.param == "exact" else 0))
    search.start()
    yield search
    search.close()


CASES = [
    ({"namespace": "work"}, lambda m: m["namespace"] == "work"),
    ({"memory_type": "knowledge_fact"}, lambda m: m["memory_type"] == "knowledge_fact"),
    ({"memory_type": ["interaction", "knowledge_fact"]}, lambda m: m["memory_type"] != "general"),
    ({"session_id": "s3"}, lambda m: m["session_id"] == "s3"),
    ({"parent_id": "p-root"}, lambda m: m["parent_id"] == "p-root"),
    ({"tags": ["a", "b"]}, lambda m: {"a", "b"} <= set(m["tags"])),
    ({"tags": "b"}, lambda m: "b" in m["tags"]),
    ({"created_after": NOW - 86400 * 5.5}, lambda m: m["created_at"] >= NOW - 86400 * 5.5),
    ({"created_before": NOW - 86400 * 20}, lambda m: m["created_at"] <= NOW - 86400 * 20),
    ({"min_importance": 0.7}, lambda m: m["importance"] >= 0.7),
    ({"namespace": "home", "tags": ["a"], "min_importance": 0.3},
     lambda m: m["namespace"] == "home" and "a" in m["tags"] and m["importance"] >= 0.3),
]


@pytest.mark.parametrize("mode", ["vector", "keyword", "hybrid"])
@pytest.mark.parametrize("filters,check", CASES, ids=[str(c[0]) for c in CASES])
def test_every_result_satisfies_the_filter(engine, mode, filters, check):
    hits = engine.search("who left the passport in the office", k=10, mode=mode, filters=filters)
    assert hits, "the filter matches rows; something must come back"
    assert all(check(h["memory"]) for h in hits)


@pytest.mark.parametrize("filters,expected", [({"parent_id": "p-root"}, 24), ({"session_id": "s3"}, 30)])
def test_selective_filter_still_fills_k(engine, filters, expected):
    hits = engine.search("astronomy lessons", k=20, mode="vector", filters=filters)
    assert len(hits) == min(20, expected)
    all_of_them = engine.search("astronomy lessons", k=100, mode="vector", filters=filters)
    assert len(all_of_them) == expected


def test_expired_memories_are_never_returned(engine):
    for mode in ("vector", "keyword", "hybrid"):
        ids = [h["memory_id"] for h in engine.search("Dana left the passport in the office", k=100, mode=mode)]
        assert "expired" not in ids


def test_iso_time_filters(engine):
    since = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(NOW - 86400 * 3.5))
    hits = engine.search("passport", k=10, mode="vector", filters={"created_after": since})
    assert hits and all(h["memory"]["created_at"] >= NOW - 86400 * 3.5 - 1 for h in hits)


def test_no_match_gives_empty_results(engine):
    assert engine.search("passport", k=10, filters={"namespace": "nobody"}) == []


@pytest.mark.parametrize("filters,field", [
    ({"colour": "red"}, "colour"),
    ({"namespace": "work", "owner": "x"}, "owner"),
    ({"namespace": 5}, "namespace"),
    ({"tags": [1, 2]}, "tags"),
    ({"tags": []}, "tags"),
    ({"min_importance": "high"}, "min_importance"),
    ({"created_after": "yesterday"}, "created_after"),
    ({"session_id": ""}, "session_id"),
])
def test_bad_filters_are_bad_requests_naming_the_field(engine, filters, field):
    with pytest.raises(BadRequest) as err:
        engine.search("passport", filters=filters)
    assert field in err.value.message
    assert err.value.details["field"] == field


def test_filters_must_be_a_mapping(engine):
    with pytest.raises(BadRequest):
        engine.search("passport", filters=["namespace"])
