"""ProactiveContextMonitor inside a running MemoryHub: a SUB client on the hub's events port receives
context.added, context.changed and context.suggestion; the SQL poll sees memories written by another
process; a burst is rate-limited."""
from __future__ import annotations

import time

import msgpack
import pytest
import zmq

from agents.memory_hub.stores.sql import SqlStore
from agents.memory_hub.stores.sql_models import Memory
from tests.support.hubproc import HubProcess

BURST = 40
# the monitor's texts on the wire (default: redacted, see test_events_privacy)
CONFIG = {"events": {"include_content": True},
          "context_monitor": {"poll_interval_s": 0.2, "rate_limits": {
    "context.added": {"rate_per_s": 0.0, "burst": BURST},
    "context.changed": {"rate_per_s": 100.0, "burst": 100},
    "context.suggestion": {"rate_per_s": 100.0, "burst": 100}}}}


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    with HubProcess("memory_hub", tmp_path_factory.mktemp("pcm-hub"), config=CONFIG) as running:
        yield running


@pytest.fixture(scope="module")
def sub(hub):
    sock = zmq.Context.instance().socket(zmq.SUB)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.SUBSCRIBE, b"context.")
    sock.connect(hub.events_endpoint)
    for _ in range(50):                     # until the subscription is live (slow joiner)
        hub.legacy_request(7119, {"action": "add_context", "context": "warm"})
        if sock.poll(200, zmq.POLLIN):
            break
    else:
        pytest.fail("no context.added event reached the subscriber")
    yield sock
    sock.close()


def collect(sock, until, timeout: float = 15.0) -> list[tuple[str, dict]]:
    """Events until ``until(events)`` is true (or the timeout)."""
    seen: list[tuple[str, dict]] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not until(seen):
        if sock.poll(100, zmq.POLLIN):
            topic, payload = sock.recv_multipart()
            seen.append((topic.decode(), msgpack.unpackb(payload)))
    return seen


def add_memory(hub, content: str) -> str:
    store = SqlStore(data_dir=hub.data_dir)            # the hub's own SQLite file, from another process
    try:
        with store.transaction() as session:
            row = Memory(content=content)
            session.add(row)
            session.flush()
            return row.memory_id
    finally:
        store.close()


def test_events_reach_a_subscriber(hub, sub):
    memory_id = add_memory(hub, "Grandma's pasta sauce recipe uses fresh tomatoes and basil")
    for text in ("let's cook pasta with tomato sauce tonight", "the pasta sauce needs more basil"):
        assert hub.legacy_request(7119, {"action": "add_context", "context": text})["status"] == "success"
    with hub.client() as client:
        client.call("ProactiveContextMonitor", "add_context",
                    {"context": {"text": "my gpu driver crashed during the kernel update"}})

    def complete(events):
        topics = {t for t, _ in events}
        kernel_shift = any(t == "context.changed" and "kernel" in f["topic"] for t, f in events)
        return {"context.added", "context.suggestion"} <= topics and kernel_shift

    events = collect(sub, complete)
    assert complete(events), events
    added = [f for t, f in events if t == "context.added"]
    assert added[-1]["text"] == "my gpu driver crashed during the kernel update"
    assert added[-1]["source"] == "MemoryHub" and added[-1]["agent"] == "ProactiveContextMonitor" and added[-1]["ts"]
    suggestion = next(f for t, f in events if t == "context.suggestion")
    assert suggestion["memories"][0]["memory_id"] == memory_id and suggestion["reason"] == "context"
    changed = [f for t, f in events if t == "context.changed" and "kernel" in f["topic"]][0]
    assert "pasta" in changed["previous_topic"] and changed["method"] in ("keyword", "embedding")


def test_poll_suggests_new_memories_on_the_current_topic(hub, sub):
    topic = "repairing the bicycle chain and gears"
    hub.legacy_request(7119, {"action": "add_context", "context": topic})
    # the monitor has taken the new topic when it announces the shift (the previous test left another topic)
    collect(sub, lambda events: any(t == "context.changed" and "bicycle" in f["topic"] for t, f in events))
    memory_id = add_memory(hub, "bicycle chain lubricant for the gears")
    # a memory written by another process reaches subscribers: judged against the topic when the poll finds
    # it ("memory"), or matched from SQL by a context still in the monitor's queue ("context"), once
    def names_it(seen):
        return any(t == "context.suggestion" and any(m["memory_id"] == memory_id for m in f["memories"])
                   for t, f in seen)

    events = collect(sub, names_it)
    suggestions = [f for t, f in events if t == "context.suggestion"
                   and any(m["memory_id"] == memory_id for m in f["memories"])]
    assert len(suggestions) == 1 and suggestions[0]["reason"] in ("memory", "context")


def test_burst_is_rate_limited_and_history_kept(hub, sub):
    for i in range(60):
        hub.legacy_request(7119, {"action": "add_context", "context": f"burst {i}"})
    collect(sub, lambda events: False, timeout=1.0)
    with hub.client() as client:
        status = client.call("ProactiveContextMonitor", "status")
        history = client.call("ProactiveContextMonitor", "get_context_history", {"limit": 100})
    assert status["running"] is True
    assert status["published"]["context.added"] == BURST and status["suppressed"]["context.added"] > 0
    assert history["history"][-1]["data"] == "burst 59"
    health = hub.legacy_request(8119, {})
    assert health["service"] == "ProactiveContextMonitor" and health["context_history_length"] == history["total"] >= 60
