"""Redis killed (SIGKILL) and restarted under write load, the hub left running.

The hub runs against a redis-server this test starts on a unix socket (``appendfsync always``, so a Redis
ack is on disk). Two legacy MOS writers, a native MemoryClient writer and two legacy CacheManager clients keep
going through the crash: MOS and KV acks are SQL-backed and keep coming while Redis is down; CacheManager
answers exactly ``{"status":"error","message":"Redis is not available"}`` meanwhile; once Redis is back the hub
recovers by itself (same pid), and every acknowledged write -- SQL and Redis -- is there.
"""
from __future__ import annotations


import pytest

from agents.memory_hub.stores.embedded_redis import EmbeddedRedis, EmbeddedRedisSettings
from tests.reliability.load_threads import Driver, legacy_mos_writer, native_kv_writer
from tests.reliability.support import LegacyReq, wait_for
from tests.support.hubproc import HubProcess

REDIS_DOWN = {"status": "error", "message": "Redis is not available"}
CACHE_TYPE = "fault_test"
pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


def cache_client(hub: HubProcess, tag: str, phase: dict) -> Driver:
    """put then get a fresh key; acknowledges (key, value) for each put answered success."""
    client = LegacyReq(hub, 7102, timeout=15)

    def step(i: int):
        key, value = f"{tag}-{i}", {"i": i, "tag": tag}
        put = client.request({"action": "put", "cache_type": CACHE_TYPE, "key": key, "value": value})
        got = client.request({"action": "get", "cache_type": CACHE_TYPE, "key": key})
        return (phase["name"], put, got), ((key, value) if put and put.get("status") == "success" else None)

    return Driver(f"cache-{tag}", step)


def test_redis_killed_and_restarted_under_load(tmp_path):
    redis_server = EmbeddedRedis(tmp_path / "redis", settings=EmbeddedRedisSettings(appendfsync="always"))
    url = redis_server.start()
    config = {"storage": {"redis_url": url},
              "cache_manager": {"health_refresh_s": 0.2, "default_max_entries": 0}}
    phase = {"name": "up"}
    try:
        with HubProcess("memory_hub", tmp_path / "hub", config=config) as hub:
            hub_pid = hub.proc.pid
            mos = [legacy_mos_writer(hub, f"mos{n}").start() for n in range(2)]
            kv = native_kv_writer(hub, "kv").start()
            caches = [cache_client(hub, f"c{n}", phase).start() for n in range(2)]
            drivers = [*mos, kv, *caches]
            try:
                assert wait_for(lambda: all(len(d.acked) >= 10 for d in drivers), timeout=60)
                acked_before = [len(d.acked) for d in (*mos, kv)]
                redis_server.kill()
                phase["name"] = "down"
                # while Redis is down: cache clients are told so, SQL-backed writes keep being acknowledged
                assert wait_for(lambda: sum(r[1] == REDIS_DOWN for d in caches for r in d.replies) >= 4, timeout=60)
                assert wait_for(lambda: all(len(d.acked) > n + 5 for d, n in zip((*mos, kv), acked_before)),
                                timeout=60)
                with hub.client(token=None) as anonymous:
                    assert anonymous.call("hub", "ping")["pong"] is True
                redis_server.start()                              # same socket, AOF reloaded
                phase["name"] = "back"
                assert wait_for(lambda: any(r[0] == "back" and r[1] == {"status": "success",
                                                                       "message": "Cache entry stored"}
                                            for d in caches for r in list(d.replies)), timeout=60)
            finally:
                for driver in drivers:
                    driver.stop()
            check_replies(caches, mos)
            check_acknowledged(hub, mos, kv, caches)
            health = wait_for(lambda: (lambda r: r if r["status"] == "ok" else None)(
                hub.legacy_request(8102, {"action": "health_check"})), timeout=30)
            assert health and health["redis_available"] is True
            assert hub.proc.pid == hub_pid and hub.proc.poll() is None
    finally:
        redis_server.stop()


def check_replies(caches: list[Driver], mos: list[Driver]) -> None:
    stored = {"status": "success", "message": "Cache entry stored"}
    for driver in caches:
        for phase, put, got in driver.replies:
            assert put in (stored, REDIS_DOWN), put
            if put == stored:      # then the value, unless Redis died between the two requests
                assert got == REDIS_DOWN or got["status"] == "success", got
            else:                  # never stored: down, or a miss once Redis is back
                assert got in (REDIS_DOWN, {"status": "error", "message": "Cache miss", "data": None}), got
            if phase == "up":
                assert put == stored
    for driver in mos:       # MOS never needed Redis to acknowledge a write
        assert all(r and r.get("status") == "success" for r in driver.replies), \
            [r for r in driver.replies if not r or r.get("status") != "success"][:3]


def check_acknowledged(hub: HubProcess, mos: list[Driver], kv: Driver, caches: list[Driver]) -> None:
    with hub.client() as client:
        ids = [memory_id for driver in mos for memory_id in driver.acked]
        for start in range(0, len(ids), 500):
            found = client.call("MemoryOrchestratorService", "batch_get_memories",
                                {"memory_ids": ids[start:start + 500]})
            assert found["missing"] == [] and found["count"] == len(ids[start:start + 500])
        for key, value in kv.acked:
            assert client.call("MemoryClient", "kv_get", {"key": key})["value"] == value
    legacy = LegacyReq(hub, 7102)
    try:
        for driver in caches:
            for key, value in driver.acked:       # appendfsync always: a Redis ack is on disk
                assert legacy.request({"action": "get", "cache_type": CACHE_TYPE, "key": key}) == {
                    "status": "success", "data": value}, key
    finally:
        legacy.close()
