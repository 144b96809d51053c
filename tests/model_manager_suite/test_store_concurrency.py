"""The model store under concurrent writers, and a generation whose stats cannot be written.

Several threads write the suite's SQL (model threads count stats, bus workers log usage, the preloader
records preloads): no write may fail with "database is locked" while another commits, and a generation
is answered even when its stats write fails (its caller waits on the future with no timeout of its own).
"""
from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from agents.model_manager_suite.store import ModelStore, ModelStoreSqlSettings, create_store_engine
from migrations.runner import upgrade_to_head

THREADS, INCREMENTS = 4, 60


@pytest.fixture
def store(tmp_path: Path) -> Iterator[ModelStore]:
    """The suite's store with a short busy timeout, so a held write lock makes a write fail quickly."""
    url = f"sqlite:///{tmp_path / 'mms.db'}"
    upgrade_to_head(url, "model_manager_suite")
    st = ModelStore(create_store_engine(url, ModelStoreSqlSettings(busy_timeout_ms=300)))
    yield st
    st.engine.dispose()


def test_concurrent_stat_increments_all_land(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'busy.db'}"
    upgrade_to_head(url, "model_manager_suite")
    store = ModelStore(create_store_engine(url))
    errors: list[BaseException] = []
    start = threading.Barrier(THREADS)

    def count() -> None:
        start.wait()
        try:
            for _ in range(INCREMENTS):
                store.add_stats("tiny-a", requests=1, tokens_generated=2)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=count) for _ in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    stats = store.get_stats("tiny-a")
    store.engine.dispose()
    assert errors == []
    assert (stats["requests"], stats["tokens_generated"]) == (THREADS * INCREMENTS, 2 * THREADS * INCREMENTS)


def test_generation_is_answered_when_its_stats_cannot_be_written(make_suite, models_dir: Path,
                                                                  store: ModelStore, tmp_path: Path) -> None:
    suite = make_suite()
    suite.loader.load("tiny-a")
    before = store.get_stats("tiny-a")["requests"]
    holder = sqlite3.connect(tmp_path / "mms.db", isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")                   # another writer holds the database
    try:
        generation = suite.engine.complete_async("tiny-a", "hi", max_tokens=2)
        reply = generation.result(30)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert reply["model_id"] == "tiny-a" and reply["completion_tokens"] > 0
    assert store.get_stats("tiny-a")["requests"] == before      # that request's stats were lost, not its answer


def test_ping_does_not_wait_for_the_write_lock(store: ModelStore, tmp_path: Path) -> None:
    store.get_stats("tiny-a")       # the pooled connection exists (opening one sets WAL mode, which locks)
    holder = sqlite3.connect(tmp_path / "mms.db", isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        assert store.ping()                           # a health check while another writer holds the lock
    finally:
        holder.execute("ROLLBACK")
        holder.close()
