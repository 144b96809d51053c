"""Restarts, snapshots and deletions: SQL stays the truth, the index never resurrects deleted rows."""
from __future__ import annotations

import time
from pathlib import Path

import pytest
from sqlalchemy import delete, update

from agents.memory_hub.search import SearchEngine
from agents.memory_hub.search.settings import SearchSettings
from agents.memory_hub.stores.sql_models import Memory
from tests.memory_hub.search.corpus import insert_rows, memory_row, sentences
from tests.memory_hub.search.facts import FACTS, PARAPHRASES

QUERIES = list(PARAPHRASES) + ["ZX-4471", "who borrowed the guitar", "sourdough"]


@pytest.fixture
def populated(sql_store):
    rows = [memory_row(text, memory_id=mid) for mid, text in FACTS.items()]
    rows += [memory_row(text) for text in sentences(150, seed=9)]
    insert_rows(sql_store.engine, rows)
    return sql_store, rows


def _engine(store, embedder, data_dir: Path, **settings) -> SearchEngine:
    settings.setdefault("maintenance_interval_s", 0)
    engine = SearchEngine(store, embedder, SearchSettings(**settings), data_dir=data_dir)
    engine.start()
    return engine


def _answers(engine: SearchEngine) -> dict[str, list[str]]:
    return {(q, mode): [h["memory_id"] for h in engine.search(q, k=5, mode=mode)]
            for q in QUERIES for mode in ("vector", "hybrid")}


def _delete_rows(store, ids: list[str]) -> None:
    with store.engine.begin() as conn:
        conn.execute(delete(Memory).where(Memory.memory_id.in_(ids)))


def test_clean_restart_loads_the_snapshot_with_identical_answers(populated, embedder, tmp_path):
    store, rows = populated
    first = _engine(store, embedder, tmp_path)
    first.index_many([(r["memory_id"], None) for r in rows])
    before = _answers(first)
    first.close()
    second = _engine(store, embedder, tmp_path)
    assert second.maintainer.status["source"] == "snapshot"
    assert _answers(second) == before
    second.close()


def test_clean_restart_uses_the_snapshot_after_writes_that_touch_no_vector(populated, embedder, tmp_path):
    store, rows = populated
    first = _engine(store, embedder, tmp_path)
    first.index_many([(r["memory_id"], None) for r in rows])
    first.close()
    second = _engine(store, embedder, tmp_path)
    assert second.maintainer.status["source"] == "snapshot"
    with store.engine.begin() as conn:                 # what reinforce / lifecycle passes do: no new embedding
        conn.execute(update(Memory).where(Memory.memory_id == "fact-dog").values(importance=0.9,
                                                                                 updated_at=time.time() + 5))
    second.close()
    third = _engine(store, embedder, tmp_path)
    assert third.maintainer.status["source"] == "snapshot"
    third.close()


def test_rebuild_from_sql_gives_identical_answers(populated, embedder, tmp_path):
    store, rows = populated
    first = _engine(store, embedder, tmp_path)
    first.index_many([(r["memory_id"], None) for r in rows])
    before = _answers(first)
    first.close()
    for name in ("meta.json", "index.faiss", "labels.json"):
        (tmp_path / "search" / "index" / name).unlink()
    second = _engine(store, embedder, tmp_path)
    assert second.maintainer.status["source"] == "sql"
    assert _answers(second) == before
    second.close()


def test_corrupt_snapshot_is_ignored(populated, embedder, tmp_path):
    store, rows = populated
    first = _engine(store, embedder, tmp_path)
    first.index_many([(r["memory_id"], None) for r in rows])
    before = _answers(first)
    first.close()
    blob = tmp_path / "search" / "index" / "index.faiss"
    data = bytearray(blob.read_bytes())
    data[len(data) // 2] ^= 0xFF
    blob.write_bytes(bytes(data))
    second = _engine(store, embedder, tmp_path)
    assert second.maintainer.status["source"] == "sql"
    assert _answers(second) == before
    second.close()


def test_deleted_memories_never_come_back(populated, embedder, tmp_path):
    store, rows = populated
    engine = _engine(store, embedder, tmp_path)
    engine.index_many([(r["memory_id"], None) for r in rows])
    engine.maintainer.save_snapshot()               # the snapshot still holds the wifi fact
    assert engine.search("ZX-4471", k=1)[0]["memory_id"] == "fact-wifi"
    _delete_rows(store, ["fact-wifi", "fact-dog"])
    engine.remove("fact-wifi")                      # fact-dog: deleted by code that never told the engine
    for mode in ("vector", "keyword", "hybrid"):
        for query in ("ZX-4471", "login secret for visitors' internet", "what's the name of our pet"):
            ids = [h["memory_id"] for h in engine.search(query, k=100, mode=mode)]
            assert "fact-wifi" not in ids and "fact-dog" not in ids
    # crash: no close(), the stale snapshot is on disk
    restarted = _engine(store, embedder, tmp_path)
    assert restarted.maintainer.status["source"] == "sql"
    assert len(restarted.index) == len(rows) - 2
    for query in ("ZX-4471", "what's the name of our pet"):
        ids = [h["memory_id"] for h in restarted.search(query, k=100, mode="vector")]
        assert "fact-wifi" not in ids and "fact-dog" not in ids
    restarted.close()
    engine.close()


def test_snapshot_is_not_trusted_when_rows_changed_after_it(populated, embedder, tmp_path):
    store, rows = populated
    engine = _engine(store, embedder, tmp_path)
    engine.index_many([(r["memory_id"], None) for r in rows])
    engine.maintainer.save_snapshot()
    insert_rows(store.engine, [memory_row("The boiler service is booked for May.", memory_id="late")])
    engine.index_memory("late")                     # crash before any new snapshot
    restarted = _engine(store, embedder, tmp_path)
    assert restarted.maintainer.status["source"] == "sql"
    assert restarted.search("when is the heating maintained", k=3, mode="vector")[0]["memory_id"] == "late"
    restarted.close()
    engine.close()


def test_close_reconciles_rows_deleted_behind_its_back(populated, embedder, tmp_path):
    store, rows = populated
    engine = _engine(store, embedder, tmp_path)
    engine.index_many([(r["memory_id"], None) for r in rows])
    _delete_rows(store, ["fact-key"])
    engine.close()                                   # snapshot written after dropping the vanished vector
    restarted = _engine(store, embedder, tmp_path)
    assert restarted.maintainer.status["source"] == "snapshot"
    assert "fact-key" not in restarted.index
    restarted.close()
