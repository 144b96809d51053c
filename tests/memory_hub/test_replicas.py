"""Two MemoryHub replicas on one PostgreSQL database and one Redis, started as users start them.

Writes through replica A are read and found by *vector* search on replica B (B's own FAISS index, fed by
the PostgreSQL change feed; keyword search could find new rows straight from SQL, vectors cannot); a
delete through A leaves B's index; ``memory.added`` is published once per write, by the replica that took
it. One replica holds the leadership (once-only background work); after ``kill -9`` of A, B goes on
serving and takes the work over: its session-expiry task expires a session.
"""
from __future__ import annotations

import time
import uuid

import msgpack
import pytest
import zmq

from tests.reliability.support import wait_for
from tests.support.hubproc import HubProcess

pytestmark = [pytest.mark.slow, pytest.mark.timeout(420)]

CONFIG = {"session_memory": {"session_timeout_s": 2.0, "cleanup_interval_s": 0.5}}


def sql_detail(client) -> dict:
    return client.call("hub", "health")["checks"]["sql"]["detail"]


def search_detail(client) -> dict:
    return client.call("hub", "health")["checks"]["search"]["detail"]


def vector_ids(client, query: str) -> list[str]:
    reply = client.call("UnifiedMemoryReasoningAgent", "semantic_search", {"query": query, "k": 5, "mode": "vector"})
    return [r["memory_id"] for r in reply["results"]]


def subscriber(hub: HubProcess) -> zmq.Socket:
    sock = zmq.Context.instance().socket(zmq.SUB)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.SUBSCRIBE, b"memory.added")
    sock.connect(hub.events_endpoint)
    return sock


def received(socks: list[zmq.Socket], seconds: float) -> list[dict]:
    events, until = [], time.monotonic() + seconds
    poller = zmq.Poller()
    for sock in socks:
        poller.register(sock, zmq.POLLIN)
    while time.monotonic() < until:
        for sock, _ in poller.poll(100):
            _topic, body = sock.recv_multipart()
            events.append(msgpack.unpackb(body))
    return events


@pytest.fixture
def replicas(tmp_path, postgres, redis_url):
    name, url = postgres.fresh()
    env = {"DATABASE_URL": url, "REDIS_URL": redis_url}
    a = HubProcess("memory_hub", tmp_path / "a", env=env, config=CONFIG)
    b = HubProcess("memory_hub", tmp_path / "b", env=env, config=CONFIG)
    try:
        a.start()
        b.start()
        yield a, b
    finally:
        b.stop()
        a.stop()
        postgres.drop(name)


def test_two_replicas_share_writes_searches_and_background_work(replicas):
    a, b = replicas
    with a.client() as ca, b.client() as cb:
        assert wait_for(lambda: sql_detail(ca)["leader"], timeout=10)
        assert sql_detail(cb)["leader"] is False                  # one leader at a time

        subs = [subscriber(a), subscriber(b)]
        time.sleep(0.5)                                           # SUB sockets connected (slow joiner)
        text = f"The replica kettle {uuid.uuid4().hex[:8]} is painted ultramarine blue."
        written = time.monotonic()
        memory_id = ca.call("MemoryOrchestratorService", "add_memory", {"content": text})["memory_id"]
        assert wait_for(lambda: memory_id in vector_ids(cb, text), timeout=10, interval=0.02)
        lag = time.monotonic() - written
        print(f"write on A -> vector hit on B after {lag * 1000:.0f} ms")
        assert cb.call("MemoryOrchestratorService", "get_memory", {"memory_id": memory_id})["content"] == text
        events = received(subs, 1.5)
        assert [e["memory_id"] for e in events if e.get("memory_id") == memory_id] == [memory_id]   # once

        cb.call("MemoryClient", "kv_set", {"key": "replica-key", "value": "from B"})
        assert ca.call("MemoryClient", "kv_get", {"key": "replica-key"})["value"] == "from B"
        for _ in range(3):                  # A holds its copy in process now (Redis tracks A's reads) ...
            assert ca.call("MemoryClient", "kv_get", {"key": "replica-key"})["value"] == "from B"
        cb.call("MemoryClient", "kv_set", {"key": "replica-key", "value": "from B again"})
        assert ca.call("MemoryClient", "kv_get", {"key": "replica-key"})["value"] == "from B again"   # ... no longer

        ca.call("MemoryOrchestratorService", "delete_memory", {"memory_id": memory_id})
        assert wait_for(lambda: search_detail(cb)["live"] == search_detail(ca)["live"], timeout=10)
        assert memory_id not in vector_ids(cb, text)
        for sock in subs:
            sock.close()

    a.kill9()
    with b.client() as cb:
        assert wait_for(lambda: sql_detail(cb)["leader"], timeout=15)      # the work moved to B
        session_id = cb.call("SessionMemoryAgent", "create_session", {"user_id": "after-a"})["session_id"]
        assert wait_for(lambda: cb.call("SessionMemoryAgent", "get_session", {"session_id": session_id})["expired"],
                        timeout=15)                                         # B's expiry task ran it
        after = cb.call("MemoryOrchestratorService", "add_memory", {"content": "written after A died"})["memory_id"]
        assert after in vector_ids(cb, "written after A died")
