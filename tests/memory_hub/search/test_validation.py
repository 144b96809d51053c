"""Bad input is a BadRequest naming the field; limits come from settings."""
from __future__ import annotations

import pytest

from agents.memory_hub.search import SearchEngine, SearchSettings
from bus.config import ConfigError
from bus.settings import from_mapping
from bus.errors import BadRequest
from tests.memory_hub.search.corpus import insert_rows, memory_row


@pytest.fixture
def engine(sql_store, make_engine):
    insert_rows(sql_store.engine, [memory_row("The dog is called Biscuit.", memory_id="dog")])
    search = make_engine(sql_store, max_k=20)
    search.index_memory("dog")
    return search


@pytest.mark.parametrize("query", ["", "   ", "\n\t", "\x00\x01"])
def test_empty_query(engine, query):
    with pytest.raises(BadRequest, match="query must not be empty"):
        engine.search(query)


@pytest.mark.parametrize("query", [None, 5, ["dog"], b"dog"])
def test_query_must_be_a_string(engine, query):
    with pytest.raises(BadRequest, match="query"):
        engine.search(query)


def test_query_length_is_bounded(engine):
    with pytest.raises(BadRequest, match="longer than"):
        engine.search("dog " * 1000)


@pytest.mark.parametrize("k", [0, -1, 21, 1000, 2.5, "5", True])
def test_k_is_bounded_by_settings(engine, k):
    with pytest.raises(BadRequest) as err:
        engine.search("dog", k=k)
    assert err.value.details["field"] == "k"


def test_k_limits_are_inclusive(engine):
    assert len(engine.search("dog", k=1)) == 1
    assert len(engine.search("dog", k=20)) == 1


def test_unknown_mode(engine):
    with pytest.raises(BadRequest, match="mode"):
        engine.search("dog", mode="fuzzy")


def test_unknown_filter_is_named(engine):
    with pytest.raises(BadRequest, match="unknown filter field 'owner'"):
        engine.search("dog", filters={"owner": "me"})


@pytest.mark.parametrize("budget", [0, -5, "100", None, 10**9])
def test_token_budget_is_checked(engine, budget):
    with pytest.raises(BadRequest, match="token_budget"):
        engine.pack_context("dog", budget)


@pytest.mark.parametrize("threshold", [1.5, "high", True])
def test_duplicate_threshold_is_checked(engine, threshold):
    with pytest.raises(BadRequest, match="threshold"):
        engine.find_near_duplicates("dog", threshold=threshold)


def test_control_characters_are_cleaned(engine):
    assert engine.search("Bis\x00cuit dog\ud800", k=1)[0]["memory_id"] == "dog"


def test_unknown_and_out_of_range_settings_are_refused(sql_store, embedder):
    with pytest.raises(ConfigError, match="search.hnsw_treshold: unknown config key"):
        from_mapping(SearchSettings, {"hnsw_treshold": 5}, "search")
    with pytest.raises(ConfigError, match="search.compact_ratio"):
        from_mapping(SearchSettings, {"compact_ratio": 2.0}, "search")
    engine = SearchEngine(sql_store, embedder, from_mapping(SearchSettings, {"max_k": 7}, "search"))
    assert engine.settings.max_k == 7


def test_index_many_accepts_pairs_mappings_and_rows(engine, sql_store):
    insert_rows(sql_store.engine, [memory_row("Cats purr.", memory_id=f"c{i}") for i in range(3)])
    assert engine.index_many([("c0", None)]) == ["c0"]
    assert engine.index_many({"c1": "Cats purr loudly."}) == ["c1"]
    assert engine.index_many([{"memory_id": "c2", "content": "Cats purr."}, {"memory_id": "ghost"}]) == ["c2"]
    for bad in ([("c0",)], [(1, "x")], [("c0", 5)], ["c0"]):
        with pytest.raises(BadRequest):
            engine.index_many(bad)
