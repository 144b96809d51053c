"""REDIS_URL ``redis+sentinel://``: a real master, replica and sentinel; the master is killed during writes.

* ``RedisStore`` level: every write acknowledged as replicated (``WAIT 1``) before the kill is on the
  promoted replica, writes during the fail-over fail as ``RedisUnavailable`` (retryable), never silently,
  and the same store (no rebuild) writes to the new master afterwards.
* MemoryClient level (SQL + its Redis copy): every acknowledged ``kv_set`` reads back after the fail-over.
"""
from __future__ import annotations

import threading
import time

import pytest

from agents.memory_hub.handlers.memory_client import MemoryClient
from agents.memory_hub.services import MemoryServices
from agents.memory_hub.stores.redis_store import RedisStore, RedisUnavailable, parse_sentinel_url, redis_errors
from bus.errors import HubError
from bus.events import NullPublisher
from bus.handler import CallContext
from tests.support.redis_sentinel import SentinelTrio

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]


@pytest.fixture
def trio(tmp_path):
    with SentinelTrio(tmp_path / "redis") as running:
        yield running


def test_sentinel_url_forms():
    assert parse_sentinel_url("redis+sentinel://:pw@a:1,b/svc?sentinel_password=s") == {
        "sentinels": [("a", 1), ("b", 26379)], "service": "svc", "password": "pw", "sentinel_password": "s",
        "ssl": False, "options": {}}
    assert parse_sentinel_url("rediss+sentinel://a/svc?ssl_ca_certs=/ca.pem")["ssl"] is True
    with pytest.raises(ValueError):
        parse_sentinel_url("redis+sentinel://a:26379/")


def _kv_set(mc: MemoryClient, key: str, value: int) -> None:
    spec, fn = mc.action_table()["kv_set"]
    fn(spec.schema.validate({"key": key, "value": value}), CallContext(agent=mc.name, action="kv_set"))


def _kv_get(mc: MemoryClient, key: str):
    spec, fn = mc.action_table()["kv_get"]
    return fn(spec.schema.validate({"key": key}), CallContext(agent=mc.name, action="kv_get"))["value"]


def test_fail_over_during_writes_loses_nothing_acknowledged(trio, tmp_path, sqlite_store):
    store = RedisStore(trio.url)
    mc = MemoryClient(MemoryServices(settings={}, data_dir=tmp_path, events=NullPublisher(), sql=sqlite_store,
                                     redis=store))
    replicated: list[str] = []
    written: list[str] = []
    acked_kv: list[tuple[str, int]] = []
    refused = 0
    stop = threading.Event()

    def writer() -> None:
        nonlocal refused
        i = 0
        while not stop.is_set():
            i += 1
            try:
                store.cache.set(f"w{i}", str(i))
                written.append(f"w{i}")
                with redis_errors():
                    with_replica = store.client("cache").wait(1, 200)
                if with_replica >= 1:
                    replicated.append(f"w{i}")
            except RedisUnavailable:
                refused += 1
                time.sleep(0.05)
            try:
                _kv_set(mc, f"kv{i}", i)
                acked_kv.append((f"kv{i}", i))
            except HubError:
                pass

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while len(replicated) < 50 and time.monotonic() < deadline:
            time.sleep(0.05)
        trio.kill_master()
        trio.wait_for_failover()
        after = len(written)
        deadline = time.monotonic() + 30
        while len(written) < after + 50 and time.monotonic() < deadline:      # writes resumed on the new master
            time.sleep(0.05)
    finally:
        stop.set()
        thread.join(30)
    assert len(written) >= after + 50, "writes did not resume on the promoted replica"
    promoted = trio.client("replica")
    assert replicated and [k for k in replicated if promoted.get(f"cache:{k}") is None] == []
    assert [k for k in written[after:] if promoted.get(f"cache:{k}") is None] == []
    assert store.health()[1]["master"] == f"127.0.0.1:{trio.ports['replica']}"
    lost = [(k, v) for k, v in acked_kv if _kv_get(mc, k) != v]
    assert acked_kv and lost == []
    print(f"fail-over: {len(replicated)} replicated writes kept, {refused} refused while no master, "
          f"{len(written) - after} written to the new master, "
          f"{len(acked_kv)} kv_set acknowledged, none lost")
    store.close()
