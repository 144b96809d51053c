"""MemoryHub ``kill -9``ed under concurrent write load, then restarted on the same data directory.

Five writers run at once -- two legacy MOS clients on 7140, a native MOS client, a native MemoryClient
``kv_set`` client and a legacy KnowledgeBase ``add_fact`` client -- when the hub gets SIGKILL. The new hub on
the same directory (its embedded Redis reaped and restarted) has every acknowledged write, the SQLite file
passes ``integrity_check``, and writes go on. The same on PostgreSQL (``DATABASE_URL`` to a fresh database of
the test cluster): every acknowledged write is in the database after the crash and through the new hub.
"""
from __future__ import annotations

import pytest

from tests.reliability.load_threads import Driver, legacy_mos_writer, native_kv_writer, native_mos_writer
from tests.reliability.support import DB_NAME, LegacyReq, count_rows, integrity_check, wait_for
from tests.support.hubproc import HubProcess

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


def legacy_fact_writer(hub: HubProcess) -> Driver:
    client = LegacyReq(hub, 5715, timeout=5)

    def step(i: int):
        topic = f"crash topic {i}"
        reply = client.request({"action": "add_fact", "topic": topic, "content": f"fact number {i}"})
        ok = isinstance(reply, dict) and reply.get("status") == "success"
        return reply, ((topic, reply["memory_id"]) if ok else None)

    return Driver("legacy-kb", step)


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request, tmp_path):
    """``(DATABASE_URL for the hub or None, what count_rows reads)``."""
    if request.param == "sqlite":
        yield None, tmp_path / "hub" / DB_NAME
        return
    databases = request.getfixturevalue("postgres")
    name, url = databases.fresh()
    try:
        yield url, url
    finally:
        databases.drop(name)


def test_acknowledged_writes_survive_kill_9_under_concurrent_load(tmp_path, database):
    data_dir = tmp_path / "hub"
    url, stored = database
    env = {"DATABASE_URL": url} if url else {}
    with HubProcess("memory_hub", data_dir, env=env) as hub:
        mos = [legacy_mos_writer(hub, f"legacy{n}", timeout=5).start() for n in range(2)]
        native = native_mos_writer(hub, "native", timeout=5).start()
        kv = native_kv_writer(hub, "kv", timeout=5).start()
        facts = legacy_fact_writer(hub).start()
        drivers = [*mos, native, kv, facts]
        try:
            assert wait_for(lambda: all(len(d.acked) >= 15 for d in drivers), timeout=90)
            hub.kill9()                                  # mid-load: requests are in flight
        finally:
            for driver in drivers:
                driver.stop()
    memory_ids = [m for d in (*mos, native) for m in d.acked]
    if url is None:
        assert integrity_check(stored) == "ok"
    assert count_rows(stored, "memories", memory_ids, "memory_id") == len(memory_ids)

    with HubProcess("memory_hub", data_dir, env=env) as again, again.client() as client:
        for start in range(0, len(memory_ids), 500):
            chunk = memory_ids[start:start + 500]
            found = client.call("MemoryOrchestratorService", "batch_get_memories", {"memory_ids": chunk})
            assert found["missing"] == [] and found["count"] == len(chunk)
        for key, value in kv.acked:
            assert client.call("MemoryClient", "kv_get", {"key": key})["value"] == value
        for topic, memory_id in facts.acked:
            reply = again.legacy_request(5715, {"action": "get_fact", "topic": topic})
            assert reply["status"] == "success" and reply["fact"]["memory_id"] == memory_id, (topic, reply)
        assert again.legacy_request(7140, {"action": "add_memory", "data": {"content": "after the crash"}})[
            "status"] == "success"
    if url is None:
        assert integrity_check(stored) == "ok"
