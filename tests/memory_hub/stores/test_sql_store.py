"""SqlStore on SQLite and PostgreSQL: connection setup, transaction scopes, typed errors, foreign keys,
serialized writers (no lost update), durability under kill -9."""
from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from sqlalchemy import func, select

from agents.memory_hub.stores.sql import SqlStore, default_database_url
from agents.memory_hub.stores.sql_models import (ContextGroup, KVEntry, Memory, MemoryGroupMapping,
                                                 MemoryRelationship, Session, User, content_hash)
from bus.errors import BadRequest, Conflict

REPO = Path(__file__).resolve().parents[3]


def _count(store: SqlStore, model) -> int:
    with store.session() as s:
        return s.scalar(select(func.count()).select_from(model))


def test_default_url_lives_in_data_dir(tmp_path: Path) -> None:
    store = SqlStore(data_dir=tmp_path)
    try:
        assert store.url == default_database_url(tmp_path)
        assert store.url.endswith("/memory_hub.db")
    finally:
        store.close()


def test_sqlite_connection_settings(sqlite_store: SqlStore) -> None:
    with sqlite_store.engine.connect() as conn:
        pragma = {name: conn.exec_driver_sql(f"PRAGMA {name}").scalar()
                  for name in ("journal_mode", "synchronous", "foreign_keys", "busy_timeout")}
    assert pragma == {"journal_mode": "wal", "synchronous": 2, "foreign_keys": 1, "busy_timeout": 10000}
    ok, detail = sqlite_store.health()
    assert ok and detail["journal_mode"] == "wal"
    assert sqlite_store.ping() is True


def test_model_defaults_and_content_hash(sql_store: SqlStore) -> None:
    with sql_store.transaction() as s:
        memory = Memory(content="the kettle is blue")
        s.add(memory)
    with sql_store.session() as s:
        row = s.get(Memory, memory.memory_id)
    assert row.memory_id.startswith("mem-")
    assert (row.memory_type, row.memory_tier, row.importance, row.access_count) == ("general", "short", 0.5, 0)
    assert (row.meta, row.tags, row.relationships, row.namespace) == ({}, [], {}, "default")
    assert row.content_hash == content_hash("the kettle is blue")
    assert row.created_at > 0 and row.expires_at is None


def test_rollback_leaves_nothing_half_written(sql_store: SqlStore) -> None:
    with pytest.raises(RuntimeError), sql_store.transaction() as s:
        s.add_all([Memory(memory_id="a", content="one"), Memory(memory_id="b", content="two")])
        s.flush()
        s.add(MemoryRelationship(source_memory_id="a", target_memory_id="b", relationship_type="r"))
        s.flush()
        raise RuntimeError("crash in the middle of a handler")
    assert _count(sql_store, Memory) == 0
    assert _count(sql_store, MemoryRelationship) == 0


def test_integrity_error_becomes_conflict_and_rolls_back(sql_store: SqlStore) -> None:
    with sql_store.transaction() as s:
        s.add(User(user_id="ana", password_hash="h"))
    with pytest.raises(Conflict) as excinfo, sql_store.transaction() as s:
        s.add(Session(session_id="s1", user_id="ana"))
        s.flush()
        s.add(User(user_id="ana", password_hash="other"))
    assert excinfo.value.code == "conflict"
    assert _count(sql_store, Session) == 0
    with sql_store.session() as s:
        assert s.get(User, "ana").password_hash == "h"


def test_foreign_keys_cascade_and_set_null(sql_store: SqlStore) -> None:
    with sql_store.transaction() as s:
        s.add_all([Memory(memory_id="parent", content="p"), Memory(memory_id="child", content="c", parent_id="parent"),
                   ContextGroup(id="g1", name="g")])
        s.flush()
        s.add_all([MemoryRelationship(source_memory_id="parent", target_memory_id="child", relationship_type="r"),
                   MemoryGroupMapping(memory_id="parent", group_id="g1")])
    with sql_store.transaction() as s:
        s.delete(s.get(Memory, "parent"))
    with sql_store.session() as s:
        assert s.get(Memory, "child").parent_id is None
    assert _count(sql_store, MemoryRelationship) == 0
    assert _count(sql_store, MemoryGroupMapping) == 0


def test_foreign_key_violation_is_a_conflict(sql_store: SqlStore) -> None:
    with pytest.raises(Conflict), sql_store.transaction() as s:
        s.add(MemoryGroupMapping(memory_id="missing", group_id="missing"))


def test_concurrent_writers_all_commit(sql_store: SqlStore) -> None:
    errors: list[BaseException] = []

    def writer(n: int) -> None:
        try:
            for i in range(20):
                with sql_store.transaction() as s:
                    entry = s.get(KVEntry, "counter")
                    if entry is None:
                        s.add(KVEntry(key="counter", value=b"1"))
                    else:
                        entry.value = str(int(entry.value) + 1).encode()
                    s.add(KVEntry(key=f"w{n}-{i}", value=b"x"))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with sql_store.session() as s:
        assert s.get(KVEntry, "counter").value == b"120"    # no lost update
    assert _count(sql_store, KVEntry) == 121


def test_in_memory_database_can_be_migrated_and_shared_across_threads() -> None:
    store = SqlStore("sqlite://")
    try:
        store.migrate()
        thread = threading.Thread(target=lambda: _add_user(store, "bo"))
        thread.start()
        thread.join()
        with store.session() as s:
            assert s.get(User, "bo") is not None
    finally:
        store.close()


def _add_user(store: SqlStore, user_id: str) -> None:
    with store.transaction() as s:
        s.add(User(user_id=user_id, password_hash="h"))


CHILD = """
import sys
from agents.memory_hub.stores.sql import SqlStore
from agents.memory_hub.stores.sql_models import KVEntry
store = SqlStore(sys.argv[1])
for i in range(10_000):
    with store.transaction() as s:
        s.add(KVEntry(key=f"k{i}", value=b"v"))
    print(i, flush=True)          # acknowledged only after commit returned
"""


def test_acknowledged_writes_survive_kill_9(sql_url: str) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-c", CHILD, sql_url], stdout=subprocess.PIPE, text=True, env=env)
    acked = -1
    assert proc.stdout is not None
    for line in proc.stdout:
        acked = int(line)
        if acked >= 50:
            break
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    proc.stdout.close()
    store = SqlStore(sql_url)
    try:
        with store.session() as s:
            keys = set(s.scalars(select(KVEntry.key)))
        assert {f"k{i}" for i in range(acked + 1)} <= keys
    finally:
        store.close()


@pytest.mark.parametrize("memory_id, content, refusal", [("nul", "before\x00after", "NUL"),
                                                          ("x" * 200, "an id longer than its column", "too long")])
def test_text_postgresql_cannot_store_is_a_bad_request(sql_store: SqlStore, memory_id: str, content: str,
                                                       refusal: str) -> None:
    """A NUL character in text, a string longer than its column: SQLite stores them, PostgreSQL refuses them
    (README "Scaling out") with a clear ``bad_request`` that leaves the store usable."""
    postgres = sql_store.engine.dialect.name == "postgresql"
    with contextlib.ExitStack() as stack:
        if postgres:
            stack.enter_context(pytest.raises(BadRequest, match=refusal))
        with sql_store.transaction() as s:
            s.add(Memory(memory_id=memory_id, content=content))
    with sql_store.transaction() as s:
        s.add(Memory(memory_id="fine", content="plain text"))
    assert _count(sql_store, Memory) == (1 if postgres else 2)


def test_one_leader_per_postgresql_database_and_it_moves_on_close(sql_url: str) -> None:
    """SQLite: every store leads (one hub per file). PostgreSQL: the first store to ask holds the advisory
    lock; when it goes, the next store to ask leads."""
    first, second = SqlStore(sql_url), SqlStore(sql_url)
    try:
        if first.engine.dialect.name == "sqlite":
            assert first.is_leader() and second.is_leader()
            return
        assert first.is_leader() and first.is_leader()
        assert second.is_leader() is False
        assert first.health()[1]["leader"] is True and second.health()[1]["leader"] is False
        first.close()
        assert second.is_leader() is True
    finally:
        first.close()
        second.close()
