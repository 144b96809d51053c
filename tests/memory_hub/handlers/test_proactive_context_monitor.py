"""ProactiveContextMonitor with a real migrated SQLite and the in-memory event collector: legacy replies,
history cap and persistence, topic shifts (keywords), suggestions, observed events, the SQL poll, rate limits."""
from __future__ import annotations

import time

import pytest

from agents.memory_hub.context_monitor import ContextMonitorSettings, TokenBucket, TopicTracker, context_text, keywords
from agents.memory_hub.handlers.proactive_context_monitor import ProactiveContextMonitor
from agents.memory_hub.stores.sql_models import Context, ContextItem, Memory, Session
from bus.errors import BadRequest, TooLarge
from bus.events import NullPublisher
from bus.handler import CallContext
from bus.settings import from_mapping

FAST = {"poll_interval_s": 0.05}
LOOSE = {"context.added": {"rate_per_s": 1000.0, "burst": 1000},
         "context.changed": {"rate_per_s": 1000.0, "burst": 1000},
         "context.suggestion": {"rate_per_s": 1000.0, "burst": 1000}}


def make_monitor(tmp_path, sql_store, **settings) -> ProactiveContextMonitor:
    settings.setdefault("rate_limits", LOOSE)
    return ProactiveContextMonitor(section(**settings), NullPublisher(), sql_store)


def section(**settings) -> ContextMonitorSettings:
    return from_mapping(ContextMonitorSettings, settings, "context_monitor")


@pytest.fixture
def pcm(tmp_path, sql_store):
    handler = make_monitor(tmp_path, sql_store, **FAST)
    handler.start()
    yield handler
    handler.stop()


def events(handler, topic: str) -> list[dict]:
    return [fields for t, fields in handler.monitor.events.events if t == topic]


def wait_for(predicate, timeout: float = 10.0) -> bool:
    until = time.monotonic() + timeout
    while time.monotonic() < until:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


def legacy(handler, request) -> dict:
    return handler.handle_legacy(request, 7119)


def add_memory(sql_store, content: str) -> str:
    with sql_store.transaction() as session:
        row = Memory(content=content)
        session.add(row)
        session.flush()
        return row.memory_id


# ------------------------------------------------------------------------------------------- legacy

def test_legacy_add_and_history(pcm):
    assert legacy(pcm, {"action": "add_context", "context": "first"}) == {"status": "success",
                                                                          "message": "Context added"}
    legacy(pcm, {"action": "add_context", "context": {"text": "second", "user": "ana"}})
    reply = legacy(pcm, {"action": "get_context_history"})
    assert reply["status"] == "success" and reply["count"] == 2 and reply["total"] == 2
    assert [e["data"] for e in reply["history"]] == ["first", {"text": "second", "user": "ana"}]
    assert all(set(e) == {"timestamp", "data"} for e in reply["history"])
    assert legacy(pcm, {"action": "get_context_history", "limit": 1})["history"][0]["data"]["text"] == "second"
    assert legacy(pcm, {"action": "get_context_history", "limit": "x"})["count"] == 2    # bad limit -> 10
    assert legacy(pcm, {"action": "get_context_history", "limit": 0})["count"] == 2      # legacy [-0:] = all
    assert legacy(pcm, {"action": "clear_context_history"}) == {"status": "success",
                                                                 "message": "Context history cleared"}
    assert legacy(pcm, {"action": "get_context_history"}) == {"status": "success", "history": [], "count": 0,
                                                              "total": 0}


def test_history_is_capped_at_100_and_persists(tmp_path, sql_store, pcm):
    for i in range(105):
        legacy(pcm, {"action": "add_context", "context": f"item {i}"})
    reply = legacy(pcm, {"action": "get_context_history", "limit": 500})
    assert reply["total"] == 100 and reply["history"][0]["data"] == "item 5"
    again = make_monitor(tmp_path, sql_store)
    assert legacy(again, {"action": "get_context_history", "limit": 3})["history"][-1]["data"] == "item 104"


@pytest.mark.parametrize("request_, message", [
    ({"action": "add_context"}, "Missing context data"),
    ({"action": "add_context", "context": ""}, "Missing context data"),
    ({"action": "add_context", "context": {}}, "Missing context data"),
    ({"action": "add_context", "context": "x" * 70000}, "Context too large"),
    ({"action": "what"}, "Unknown action: what"),
    ({"action": "ping"}, "Unknown action: ping"),
])
def test_legacy_errors(pcm, request_, message):
    assert legacy(pcm, request_) == {"status": "error", "message": message}


def test_legacy_health(pcm):
    legacy(pcm, {"action": "add_context", "context": "x"})
    reply = legacy(pcm, {"action": "health_check"})
    assert reply["status"] == "ok" and reply["service"] == "ProactiveContextMonitor"
    assert reply["context_history_length"] == 1 and reply["request_count"] == 2 and reply["uptime"] >= 0
    assert pcm.legacy_health(8119)["service"] == "ProactiveContextMonitor"


# ------------------------------------------------------------------------------------------- native

def test_native_actions(pcm):
    ctx = CallContext(agent="ProactiveContextMonitor", action="x")
    assert pcm.add_context_action({"context": "native one"}, ctx)["total"] == 1
    assert pcm.get_context_history_action({"limit": 5}, ctx)["history"][0]["data"] == "native one"
    with pytest.raises(BadRequest):
        pcm.add_context_action({"context": []}, ctx)
    with pytest.raises(TooLarge):
        pcm.add_context_action({"context": ["y" * 70000]}, ctx)
    assert pcm.clear_context_history_action({}, ctx) == {"cleared": 1}
    status = pcm.status({}, ctx)
    assert status["running"] is True and status["method"] == "keyword"


# ------------------------------------------------------------------------------------------- analysis

def test_topic_shift_and_suggestion_events(pcm, sql_store):
    memory_id = add_memory(sql_store, "Grandma's pasta sauce recipe uses fresh tomatoes and basil")
    for text in ("let's cook pasta with tomato sauce tonight", "the pasta sauce needs more basil"):
        pcm.handle_legacy({"action": "add_context", "context": text}, 7119)
    pcm.handle_legacy({"action": "add_context", "context": {"text": "my gpu driver crashed during the kernel update"}},
                      7119)
    assert pcm.monitor.drain()
    added = events(pcm, "context.added")
    assert [e["text"] for e in added][-1] == "my gpu driver crashed during the kernel update"
    assert added[0]["agent"] == "ProactiveContextMonitor" and added[0]["origin"] == "add_context"
    changed = events(pcm, "context.changed")
    assert len(changed) == 1 and changed[0]["method"] == "keyword"
    assert "pasta" in changed[0]["previous_topic"] and "kernel" in changed[0]["topic"]
    suggestions = events(pcm, "context.suggestion")
    assert suggestions and suggestions[0]["memories"][0]["memory_id"] == memory_id
    assert suggestions[0]["reason"] == "context"
    assert len([s for s in suggestions if s["memories"][0]["memory_id"] == memory_id]) == 1   # not repeated


def test_observed_memory_on_topic_is_suggested(pcm):
    pcm.handle_legacy({"action": "add_context", "context": "planning the hiking trip to the mountains"}, 7119)
    pcm.observe("memory.added", {"memory_id": "m-1", "content": "hiking boots for the mountains trip"})
    pcm.observe("memory.added", {"memory_id": "m-2", "content": "quarterly tax forms"})
    pcm.observe("memory.added", {"memory_id": "m-1", "content": "hiking boots for the mountains trip"})
    pcm.observe("context.suggestion", {"agent": "ProactiveContextMonitor", "text": "loop"})
    assert pcm.monitor.drain()
    suggestions = [s for s in events(pcm, "context.suggestion") if s["reason"] == "memory"]
    assert [s["memories"][0]["memory_id"] for s in suggestions] == ["m-1"]


def test_session_events_restart_the_topic(pcm):
    pcm.handle_legacy({"action": "add_context", "context": "football match results"}, 7119)
    pcm.observe("session.created", {"session_id": "s"})
    pcm.handle_legacy({"action": "add_context", "context": "quantum chemistry homework"}, 7119)
    assert pcm.monitor.drain()
    assert events(pcm, "context.changed") == []


def test_sql_poll_sees_memories_and_context_items(pcm, sql_store):
    pcm.handle_legacy({"action": "add_context", "context": "astronomy telescope lenses"}, 7119)
    assert pcm.monitor.drain()
    memory_id = add_memory(sql_store, "cleaning telescope lenses safely")
    with sql_store.transaction() as session:
        session.add(Context(context_id="c1"))
        session.flush()
        session.add(ContextItem(context_id="c1", text="weather forecast says heavy rain tomorrow"))
    assert wait_for(lambda: any(s["reason"] == "memory" and s["memories"][0]["memory_id"] == memory_id
                                for s in events(pcm, "context.suggestion")))
    assert not any(e["origin"] == "ContextManager" for e in events(pcm, "context.added"))   # not re-published
    assert wait_for(lambda: any(e["origin"] == "ContextManager" for e in events(pcm, "context.changed")))
    with sql_store.transaction() as session:
        session.add(Session(session_id="poll-session"))
    assert wait_for(lambda: not pcm.monitor.tracker.window)


def test_a_burst_is_rate_limited(tmp_path, sql_store):
    handler = make_monitor(tmp_path, sql_store, rate_limits={
        "context.added": {"rate_per_s": 0.0, "burst": 5}, "context.changed": {"rate_per_s": 0.0, "burst": 1},
        "context.suggestion": {"rate_per_s": 0.0, "burst": 1}})
    handler.start()
    try:
        for i in range(50):
            handler.handle_legacy({"action": "add_context", "context": f"burst message number {i} about topic{i}"},
                                  7119)
        assert handler.monitor.drain()
    finally:
        handler.stop()
    assert len(events(handler, "context.added")) == 5
    assert len(events(handler, "context.changed")) <= 1
    stats = handler.monitor.stats()
    assert stats["published"]["context.added"] == 5 and stats["suppressed"]["context.added"] == 45
    assert legacy(handler, {"action": "get_context_history", "limit": 100})["total"] == 50   # history unaffected


# ------------------------------------------------------------------------------------------- pieces

def test_token_bucket_refills():
    now = [0.0]
    bucket = TokenBucket(2.0, 3, clock=lambda: now[0])
    assert [bucket.allow() for _ in range(4)] == [True, True, True, False]
    now[0] += 0.5
    assert bucket.allow() and not bucket.allow()


def test_keyword_tracker_and_text_extraction():
    tracker = TopicTracker(section(shift_threshold=0.35, keyword_shift_threshold=0.2, topic_window=5), None)
    assert tracker.update("pasta sauce with basil") is None            # first text: no previous topic
    assert tracker.update("more basil in the pasta") is None
    changed = tracker.update("kernel panic on boot")
    assert changed["method"] == "keyword" and changed["similarity"] == 0.0
    assert keywords("The GPU, the GPU and the driver!") == {"gpu", "driver"}
    assert context_text({"text": "a", "content": "b", "other": 1}) == "a b"
    assert context_text({"other": 1}) == '{"other": 1}' and context_text(["x", {"text": "y"}]) == "x y"


def test_publisher_observers_feed_the_monitor(tmp_path, sql_store):
    inner = events_out = NullPublisher()
    handler = ProactiveContextMonitor(section(rate_limits=LOOSE), events_out, sql_store)
    seen: list[str] = []
    events_out.observers += [handler.observe, lambda topic, fields: seen.append(topic),
                             lambda topic, fields: 1 / 0]
    handler.start()
    try:
        handler.handle_legacy({"action": "add_context", "context": "sailing boats in the harbour"}, 7119)
        events_out.publish("memory.added", {"memory_id": "boat", "content": "harbour sailing boats schedule"})
        assert handler.monitor.drain()
    finally:
        handler.stop()
    topics = [t for t, _ in inner.events]
    assert topics.count("context.added") == 1 and "memory.added" in topics
    assert [f["memories"][0]["memory_id"] for t, f in inner.events if t == "context.suggestion"] == ["boat"]
    assert seen[:2] == ["context.added", "memory.added"]


def test_context_items_seen_as_events_are_not_analysed_again_by_the_poll(pcm, sql_store):
    with sql_store.transaction() as session:
        session.add(Context(context_id="c2"))
        session.flush()
        item = ContextItem(context_id="c2", text="volcano eruption lava flows")
        session.add(item)
        session.flush()
        item_id = item.id
    pcm.observe("context.added", {"context_id": "c2", "item_id": item_id, "text": "volcano eruption lava"})
    pcm.handle_legacy({"action": "add_context", "context": "stock market prices fell sharply"}, 7119)
    assert pcm.monitor.drain()
    time.sleep(0.3)                                   # several polls (50 ms) pass over the same item
    assert pcm.monitor.drain()
    volcano = [f for t, f in pcm.monitor.events.events if t == "context.changed" and "volcano" in f["text"]]
    assert len(volcano) <= 1
    assert not [f for t, f in pcm.monitor.events.events if t == "context.changed" and "lava flows" in f["text"]]


def test_replicas_sharing_redis_suggest_a_memory_once(tmp_path, sql_store, redis_store):
    """Two monitors (two replicas) on one Redis, both seeing the same new memory on topic: one suggests it."""
    monitors = []
    for _replica in ("a", "b"):
        monitors.append(ProactiveContextMonitor(section(**FAST, rate_limits=LOOSE), NullPublisher(), sql_store,
                                                redis_store))
    for handler in monitors:
        handler.start()
    try:
        for handler in monitors:
            handler.handle_legacy({"action": "add_context", "context": "planning the hiking trip to the mountains"},
                                  7119)
            handler.observe("memory.added", {"memory_id": "m-1", "content": "hiking boots for the mountains trip"})
        assert all(handler.monitor.drain() for handler in monitors)
        suggested = [s for handler in monitors for s in events(handler, "context.suggestion")
                     if s["reason"] == "memory"]
        assert [s["memories"][0]["memory_id"] for s in suggested] == ["m-1"]
    finally:
        for handler in monitors:
            handler.stop()
