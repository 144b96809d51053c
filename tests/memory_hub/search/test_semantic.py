"""Semantic and hybrid search with the real model: paraphrases find their facts among distractors."""
from __future__ import annotations

import pytest

from tests.memory_hub.search.corpus import insert_rows, memory_row, sentences
from tests.memory_hub.search.facts import FACTS, PARAPHRASES


@pytest.fixture
def engine(sql_store, make_engine):
    rows = [memory_row(text, memory_id=mid) for mid, text in FACTS.items()]
    rows += [memory_row(text) for text in sentences(300, seed=11)]
    insert_rows(sql_store.engine, rows)
    search = make_engine(sql_store)
    assert len(search.index_many([(r["memory_id"], None) for r in rows])) == len(rows)
    return search


@pytest.mark.parametrize("mode", ["vector", "hybrid"])
def test_paraphrases_find_their_fact_in_top_3(engine, mode):
    misses = {}
    for question, fact_id in PARAPHRASES.items():
        top = [hit["memory_id"] for hit in engine.search(question, k=3, mode=mode)]
        if fact_id not in top:
            misses[question] = top
    assert not misses


def test_result_shape(engine):
    hits = engine.search("what's the name of our pet", k=5)
    assert len(hits) == 5
    first = hits[0]
    assert set(first) == {"memory_id", "score", "vector_score", "keyword_score", "memory"}
    assert first["memory"]["memory_id"] == first["memory_id"]
    assert "embedding" not in first["memory"]
    assert first["memory"]["content"] == FACTS["fact-dog"]
    assert all(hits[i]["score"] >= hits[i + 1]["score"] for i in range(4))
    vector_hits = engine.search("what's the name of our pet", k=5, mode="vector")
    assert all(-1.0 <= h["score"] <= 1.0 and h["score"] == h["vector_score"] for h in vector_hits)


def test_index_memory_stores_the_embedding_in_sql(engine, sql_store):
    from agents.memory_hub.search.rows import from_blob
    from agents.memory_hub.stores.sql_models import Memory

    with sql_store.session() as s:
        blob = s.get(Memory, "fact-dog").embedding
    vector = from_blob(blob, 384)
    assert vector is not None and abs(float(vector @ vector) - 1.0) < 1e-4


def test_index_memory_of_a_missing_row_is_not_found(engine):
    from bus.errors import NotFound

    with pytest.raises(NotFound):
        engine.index_memory("no-such-memory", "text")


def test_reindex_after_content_change(engine, sql_store):
    from sqlalchemy import update

    from agents.memory_hub.stores.sql_models import Memory

    with sql_store.engine.begin() as conn:
        conn.execute(update(Memory).where(Memory.memory_id == "fact-dog")
                     .values(content="The cat is called Pixel and sleeps on the radiator."))
    engine.index_memory("fact-dog")
    top = [h["memory_id"] for h in engine.search("a kitten napping on the heater", k=3, mode="vector")]
    assert "fact-dog" in top
    assert len(engine.index) == 310           # replaced, not duplicated
