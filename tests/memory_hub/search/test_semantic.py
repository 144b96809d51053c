"""Semantic and hybrid search with the real model: paraphrases find their facts among distractors."""
from __future__ import annotations

import pytest

from tests.memory_hub.search.corpus import insert_rows, memory_row, populated, sentences
from tests.memory_hub.search.facts import FACTS, PARAPHRASES


@pytest.fixture(scope="module")
def engine(module_sql_url, tmp_path_factory, embedder):
    rows = [memory_row(text, memory_id=mid) for mid, text in FACTS.items()]
    rows += [memory_row(text) for text in sentences(300, seed=11)]
    yield from populated(module_sql_url, tmp_path_factory, embedder, rows)


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
    assert set(first) == {"memory_id", "score", "vector_score", "keyword_score", "vector_rank", "memory"}
    assert first["memory"]["memory_id"] == first["memory_id"]
    assert "embedding" not in first["memory"]
    assert first["memory"]["content"] == FACTS["fact-dog"]
    assert all(hits[i]["score"] >= hits[i + 1]["score"] for i in range(4))
    vector_hits = engine.search("what's the name of our pet", k=5, mode="vector")
    assert all(-1.0 <= h["score"] <= 1.0 and h["score"] == h["vector_score"] for h in vector_hits)


def test_index_memory_stores_the_embedding_in_sql(engine):
    from sqlalchemy import select

    from agents.memory_hub.search.rows import from_blob
    from agents.memory_hub.stores.sql_models import Memory

    with engine.engine.connect() as conn:
        blob = conn.execute(select(Memory.embedding).where(Memory.memory_id == "fact-dog")).scalar_one()
    vector = from_blob(blob, 384)
    assert vector is not None and abs(float(vector @ vector) - 1.0) < 1e-4


def test_index_memory_of_a_missing_row_is_not_found(engine):
    from bus.errors import NotFound

    with pytest.raises(NotFound):
        engine.index_memory("no-such-memory", "text")


def test_reindex_after_content_change(engine):
    from sqlalchemy import update

    from agents.memory_hub.stores.sql_models import Memory

    insert_rows(engine.engine, [memory_row("The parrot repeats the doorbell sound.", memory_id="pet-2")])
    engine.index_memory("pet-2")
    size = len(engine.index)
    with engine.engine.begin() as conn:
        conn.execute(update(Memory).where(Memory.memory_id == "pet-2")
                     .values(content="The cat is called Pixel and sleeps on the radiator."))
    engine.index_memory("pet-2")
    top = [h["memory_id"] for h in engine.search("a kitten napping on the heater", k=3, mode="vector")]
    assert "pet-2" in top
    assert len(engine.index) == size          # replaced, not duplicated
