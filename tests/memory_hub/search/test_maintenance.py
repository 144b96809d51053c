"""Background maintenance: embedding backfill, compaction, periodic snapshots, HNSW through the engine."""
from __future__ import annotations

import threading
import time

import pytest
from sqlalchemy import delete

from agents.memory_hub.search import SearchEngine
from agents.memory_hub.search.settings import SearchSettings
from agents.memory_hub.stores.sql_models import Memory
from bus.errors import Unavailable
from tests.memory_hub.search.corpus import insert_rows, memory_row, sentences


def test_rows_without_embeddings_are_backfilled(sql_store, make_engine):
    engine = make_engine(sql_store, backfill_batch=16)
    insert_rows(sql_store.engine, [memory_row(t) for t in sentences(40, seed=12)])
    insert_rows(sql_store.engine, [memory_row("The fuse box is behind the coats.", memory_id="fuse")])
    assert engine.search("where is the electrical panel", k=5, mode="vector") == []
    report = engine.maintainer.run_once()
    assert report["backfilled"] == 41
    assert engine.search("where is the electrical panel", k=1, mode="vector")[0]["memory_id"] == "fuse"
    assert engine.maintainer.run_once()["backfilled"] == 0


def test_background_thread_backfills_and_snapshots(sql_store, make_engine):
    engine = make_engine(sql_store, maintenance_interval_s=0.05, snapshot_every=1)
    insert_rows(sql_store.engine, [memory_row("The fuse box is behind the coats.", memory_id="fuse")])
    deadline = time.monotonic() + 30
    while "fuse" not in engine.index and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "fuse" in engine.index
    snapshot = engine.maintainer.snapshot_dir / "meta.json"
    while not snapshot.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert snapshot.exists()


def test_tombstones_are_compacted(sql_store, make_engine):
    rows = [memory_row(t) for t in sentences(60, seed=13)]
    engine = make_engine(sql_store, compact_ratio=0.2)
    insert_rows(sql_store.engine, rows)
    engine.index_many([(r["memory_id"], None) for r in rows])
    gone = [r["memory_id"] for r in rows[:20]]
    with sql_store.engine.begin() as conn:
        conn.execute(delete(Memory).where(Memory.memory_id.in_(gone)))
    engine.remove(gone)
    assert engine.index.tombstones == 20
    assert engine.maintainer.run_once()["compacted"]
    assert engine.index.tombstones == 0 and len(engine.index) == 40


def test_engine_in_hnsw_mode_agrees_with_exact_mode(sql_store, make_engine, embedder):
    rows = [memory_row(t) for t in sentences(400, seed=14)]
    insert_rows(sql_store.engine, rows)
    exact = make_engine(sql_store, snapshot_path="")
    exact.index_many([(r["memory_id"], None) for r in rows])
    hnsw = make_engine(sql_store, snapshot_path="", hnsw_threshold=100)
    assert hnsw.index.kind == "hnsw" and len(hnsw.index) == 400
    same = 0
    for query in sentences(30, seed=15):
        a = [h["memory_id"] for h in hnsw.search(query, k=5, mode="vector")]
        b = [h["memory_id"] for h in exact.search(query, k=5, mode="vector")]
        same += a[0] == b[0]
    assert same >= 28


def test_background_start_refuses_calls_only_at_their_deadline(sql_store, embedder, tmp_path):
    insert_rows(sql_store.engine, [memory_row("The fuse box is behind the coats.", memory_id="fuse")])
    engine = SearchEngine(sql_store, embedder, SearchSettings(maintenance_interval_s=0), data_dir=tmp_path)
    engine.maintainer._start_lock.acquire()          # hold the start so the "loading" window is observable
    try:
        thread = engine.start_background()
        with pytest.raises(Unavailable) as err:
            engine.search("fuse", deadline=time.monotonic() + 0.3)
        assert err.value.retryable and err.value.retry_after_ms
        assert not engine.health()[0] and not engine.wait_ready(0.1)
    finally:
        engine.maintainer._start_lock.release()
    thread.join(timeout=60)
    assert engine.health()[0] and engine.wait_ready(0)
    engine.close()


def test_calls_during_the_start_wait_and_writes_are_indexed_before_ready(sql_store, embedder, tmp_path):
    engine = SearchEngine(sql_store, embedder, SearchSettings(maintenance_interval_s=0), data_dir=tmp_path)
    engine.maintainer._start_lock.acquire()
    answers: list = []
    try:
        thread = engine.start_background()
        insert_rows(sql_store.engine, [memory_row("The garage door code is 4471.", memory_id="garage")])
        assert engine.index_many([("garage", None)]) == []        # acknowledged; the start embeds it
        engine.index_memory("garage")                              # no NotFound while loading either
        waiting = threading.Thread(target=lambda: answers.append(
            engine.search("How do I open where the car is parked?", k=3, mode="vector")))
        waiting.start()
        time.sleep(0.3)
        assert answers == []                                       # waits for the start, no error
    finally:
        engine.maintainer._start_lock.release()
    thread.join(timeout=60)
    waiting.join(timeout=60)
    assert engine.maintainer.status["caught_up"] == 1 and "garage" in engine.index
    assert [h["memory_id"] for h in answers[0]] == ["garage"]
    engine.close()
