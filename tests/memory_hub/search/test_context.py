"""pack_context and find_near_duplicates."""
from __future__ import annotations

import pytest

from agents.memory_hub.search.ranking import estimate_tokens
from tests.memory_hub.search.corpus import memory_row, populated, sentences

GARDEN = [
    ("g1", "Tomatoes in the greenhouse need watering every morning."),
    ("g1-copy", "Tomatoes in the greenhouse need watering every morning."),
    ("g1-near", "The greenhouse tomatoes need to be watered each morning."),
    ("g2", "The roses by the fence were pruned in February."),
    ("g3", "Compost from the kitchen goes into the green bin behind the shed."),
    ("g4", "Slugs ate most of the lettuce seedlings this spring."),
]


@pytest.fixture(scope="module")
def engine(module_sql_url, tmp_path_factory, embedder):
    rows = [memory_row(text, memory_id=mid, namespace="garden") for mid, text in GARDEN]
    rows += [memory_row(text) for text in sentences(100, seed=4)]
    yield from populated(module_sql_url, tmp_path_factory, embedder, rows)


def test_near_duplicates_are_found_within_the_namespace(engine):
    dups = engine.find_near_duplicates("Tomatoes in the greenhouse need watering every morning.", "garden")
    ids = [d["memory_id"] for d in dups]
    assert set(ids) >= {"g1", "g1-copy"} and "g2" not in ids
    assert all(d["score"] >= engine.settings.duplicate_threshold for d in dups)
    loose = [d["memory_id"] for d in engine.find_near_duplicates(
        "Tomatoes in the greenhouse need watering every morning.", "garden", threshold=0.8)]
    assert "g1-near" in loose
    assert engine.find_near_duplicates("Tomatoes in the greenhouse need watering every morning.", "work") == []


def test_pack_context_drops_duplicates_and_fits_the_budget(engine):
    packed = engine.pack_context("how do I look after the vegetable garden", 60, filters={"namespace": "garden"})
    ids = [m["memory_id"] for m in packed["memories"]]
    assert len({"g1", "g1-copy", "g1-near"} & set(ids)) == 1
    assert packed["duplicates_dropped"] >= 2
    assert packed["tokens"] == sum(m["tokens"] for m in packed["memories"]) <= 60
    assert packed["text"] == "\n".join(m["content"] for m in packed["memories"])
    assert all(m["tokens"] == estimate_tokens(m["content"], 1.3) for m in packed["memories"])


def test_small_budget_keeps_what_fits(engine):
    packed = engine.pack_context("garden", 12, filters={"namespace": "garden"})
    assert packed["tokens"] <= 12
    assert len(packed["memories"]) == 1


def test_estimate_tokens():
    assert estimate_tokens("one two three four five six seven eight nine ten", 1.3) == 13
    assert estimate_tokens("", 1.3) == 1


def test_near_duplicates_can_exclude_the_memory_itself(engine):
    dups = engine.find_near_duplicates(GARDEN[0][1], "garden", exclude=["g1"])
    assert [d["memory_id"] for d in dups][0] == "g1-copy"
    assert "g1" not in [d["memory_id"] for d in dups]
