"""ContextManager against a real migrated SQLite (no hub process): importance scoring, adaptive window,
speaker views, pruning, persistence per context id, legacy replies, native actions and events.
"""
from __future__ import annotations

import pytest

from agents.memory_hub.context_window import ContextWindowSettings, ContextWindows, importance_of
from agents.memory_hub.handlers.context_manager import ContextManager
from agents.memory_hub.stores.sql import SqlStore
from bus.errors import BadRequest
from bus.events import NullPublisher
from bus.handler import CallContext


@pytest.fixture
def events() -> NullPublisher:
    return NullPublisher()


@pytest.fixture
def agent(events, sql_store) -> ContextManager:
    return ContextManager(ContextWindowSettings(), events, sql_store)


def legacy(agent: ContextManager, request) -> dict:
    return agent.handle_legacy(request, 7111)


def ctx(action: str) -> CallContext:
    return CallContext(agent="ContextManager", action=action)


# ------------------------------------------------------------------------------------------- scoring

@pytest.mark.parametrize("text, score", [
    ("hello there", 0.5),
    ("remember my name", 0.7),
    ("this is important and critical", 0.9),             # +0.2 per keyword
    ("tandaan mo ito", 0.7),                             # Tagalog keyword
    ("don't forget the milk", 0.7),
    ("what time is it?", 0.6),                           # question
    ("please open the door", 0.6),                       # request pattern
    ("could you please help", 0.6),                      # several patterns count once
    ("kailangan ko ng tulong", 0.8),                     # keyword + pattern
    (" ".join(["word"] * 16), 0.6),                      # more than 15 words
    ("REMEMBER this important essential critical thing?", 1.0),   # clamped
])
def test_importance_score(text, score):
    assert importance_of(text) == pytest.approx(score)


# ------------------------------------------------------------------------------------------- window

def test_window_keeps_the_newest_items_and_grows_with_high_importance(sql_store):
    windows = ContextWindows(sql_store)
    for i in range(12):
        windows.add("c", f"plain {i}")
    assert windows.info("c")["window_size"] == 10
    assert [i["text"] for i in windows.get("c")] == [f"plain {i}" for i in range(11, 1, -1)]
    for i in range(6):
        windows.add("c", f"important critical {i}")               # 0.9 each
    info = windows.info("c")
    assert info["window_size"] > 10 and info["window_size"] <= 20


def test_window_grows_to_max_and_shrinks_to_min(sql_store):
    windows = ContextWindows(sql_store)
    for i in range(15):
        windows.add("c", f"remember {i}", importance=1.0)
    assert windows.info("c")["window_size"] == 20
    for i in range(40):
        windows.add("c", f"noise {i}", importance=0.0)
    assert windows.info("c")["window_size"] == 5
    assert len(windows.get("c")) == 5


def test_get_sorts_by_importance_then_recency_and_limits(sql_store):
    windows = ContextWindows(sql_store)
    windows.add("c", "first plain")
    windows.add("c", "remember this")
    windows.add("c", "second plain")
    assert [i["text"] for i in windows.get("c")] == ["remember this", "second plain", "first plain"]
    assert [i["text"] for i in windows.get("c", max_items=2)] == ["remember this", "second plain"]


def test_speaker_views_and_clearing(sql_store):
    windows = ContextWindows(sql_store)
    windows.add("c", "from ana", speaker="ana")
    windows.add("c", "from bo", speaker="bo")
    assert [i["text"] for i in windows.get("c", speaker="ana")] == ["from ana"]
    assert len(windows.get("c", speaker="nobody")) == 2                   # unknown speaker: the general window
    assert windows.text("c", speaker="bo") == "[bo]: from bo"
    assert windows.clear("c", speaker="ana") == 1
    assert windows.get("c", speaker="ana") == []
    assert len(windows.get("c")) == 2                                      # general window keeps its items
    windows.add("c", "ana again", speaker="ana")
    assert [i["text"] for i in windows.get("c", speaker="ana")] == ["ana again"]
    assert windows.clear("c") == 3
    assert windows.get("c") == [] and windows.get("c", speaker="bo") == []


def test_speaker_view_outlives_the_general_window(sql_store):
    windows = ContextWindows(sql_store)
    windows.add("c", "ana said this", speaker="ana")
    for i in range(15):
        windows.add("c", f"filler {i}")
    assert "ana said this" not in [i["text"] for i in windows.get("c")]
    assert [i["text"] for i in windows.get("c", speaker="ana")] == ["ana said this"]


def test_speaker_view_holds_at_most_max_size(sql_store):
    windows = ContextWindows(sql_store)
    for i in range(25):
        windows.add("c", f"ana {i}", speaker="ana")
    assert len(windows.get("c", speaker="ana")) == 20


def test_prune_removes_low_items_only_from_a_full_window(sql_store):
    windows = ContextWindows(sql_store)
    for i in range(4):
        windows.add("c", f"low {i}", importance=0.4)
    assert windows.prune("c") == 0                                         # not full yet
    for i in range(6):
        windows.add("c", f"mid {i}", importance=0.5)
    assert windows.info("c")["window_size"] == 10
    assert windows.prune("c") == 2                                         # at most a quarter (10 // 4)
    assert [i["text"] for i in windows.get("c") if i["text"].startswith("low")] == ["low 3", "low 2"]


def test_windows_persist_per_context_id_across_instances(sql_url):
    first = SqlStore(sql_url)
    ContextWindows(first).add("kitchen", "remember the oven", speaker="ana")
    ContextWindows(first).add("garage", "car keys")
    first.close()
    second = SqlStore(sql_url)
    try:
        windows = ContextWindows(second)
        assert [i["text"] for i in windows.get("kitchen")] == ["remember the oven"]
        assert [i["text"] for i in windows.get("garage")] == ["car keys"]
        assert windows.delete("garage") and windows.get("garage") == []
    finally:
        second.close()


# ------------------------------------------------------------------------------------------- legacy

def test_every_legacy_action_and_reply(agent):
    assert legacy(agent, {"action": "add_to_context", "text": "Remember: the door code is 42?", "speaker": "ana",
                          "metadata": {"room": "hall"}}) == {"status": "success", "message": "Added to context"}
    assert legacy(agent, {"action": "add_to_context", "text": "ok"})["status"] == "success"
    reply = legacy(agent, {"action": "get_context"})
    assert reply["status"] == "success"
    first = reply["context"][0]
    assert set(first) == {"text", "speaker", "metadata", "importance", "timestamp"}
    assert first["text"].startswith("Remember") and first["speaker"] == "ana" and first["metadata"] == {"room": "hall"}
    assert first["importance"] == pytest.approx(0.8)
    assert legacy(agent, {"action": "get_context", "speaker": "ana", "max_items": 1})["context"][0]["speaker"] == "ana"
    assert legacy(agent, {"action": "get_context_text"}) == \
        {"status": "success", "context_text": "[ana]: Remember: the door code is 42?\nok"}
    assert legacy(agent, {"action": "prune_context"}) == {"status": "success", "message": "Context pruned"}
    assert legacy(agent, {"action": "clear_context", "speaker": "ana"}) == {"status": "success",
                                                                           "message": "Context cleared"}
    assert legacy(agent, {"action": "clear_context"}) == {"status": "success", "message": "Context cleared"}
    assert legacy(agent, {"action": "get_context"}) == {"status": "success", "context": []}
    assert legacy(agent, {"action": "nope"}) == {"status": "error", "message": "Unknown action: nope"}


def test_legacy_requests_use_the_default_context(agent):
    legacy(agent, {"action": "add_to_context", "text": "legacy item"})
    native = agent.get_context({"context_id": "default", "speaker": None, "max_items": None}, ctx("get_context"))
    assert [i["text"] for i in native["items"]] == ["legacy item"]


def test_legacy_falsy_fields_mean_absent(agent):
    legacy(agent, {"action": "add_to_context", "text": "x", "speaker": "", "metadata": None})
    assert legacy(agent, {"action": "get_context", "max_items": 0, "speaker": ""})["context"][0]["speaker"] is None


@pytest.mark.parametrize("request_, message", [
    ({"action": "add_to_context"}, "Missing text parameter"),
    ({"action": "add_to_context", "text": ""}, "Missing text parameter"),
    ({"action": "add_to_context", "text": 12}, "Invalid text parameter"),
    ({"action": "add_to_context", "text": "x" * 20001}, "Invalid text parameter"),
    ({"action": "add_to_context", "text": "x", "speaker": ["a"]}, "Invalid speaker parameter"),
    ({"action": "add_to_context", "text": "x", "metadata": "m"}, "Invalid metadata parameter"),
    ({"action": "get_context", "max_items": "3"}, "Invalid max_items parameter"),
    ({"action": "get_context", "max_items": -1}, "Invalid max_items parameter"),
    ({"action": "get_context_text", "speaker": 5}, "Invalid speaker parameter"),
    ({"action": "clear_context", "speaker": {"a": 1}}, "Invalid speaker parameter"),
])
def test_bad_legacy_input(agent, request_, message):
    assert legacy(agent, request_) == {"status": "error", "message": message}


def test_health_replies(agent):
    for reply in (agent.legacy_health(8111), legacy(agent, {"action": "health_check"})):
        assert reply["status"] == "ok" and reply["service"] == "ContextManager"
        assert reply["initialization_status"] == "complete"
        assert reply["port"] == 7111 and reply["health_port"] == 8111 and "timestamp" in reply
    assert legacy(agent, ["x"]) == {"status": "error", "message": "Invalid request format"}


# ------------------------------------------------------------------------------------------- native

def test_native_actions_and_context_added_event(agent, events):
    item = agent.add({"context_id": "room1", "text": "please remember", "speaker": "ana", "metadata": {"k": 1},
                      "importance": None}, ctx("add"))
    assert item["context_id"] == "room1" and item["importance"] == pytest.approx(0.8)
    assert item["window_size"] == 12                    # average importance 0.8 > 0.7: grows by 2
    topic, fields = events.events[-1]
    assert topic == "context.added"
    assert fields["context_id"] == "room1" and fields["text"] == "please remember" and fields["speaker"] == "ana"
    assert fields["item_id"] == item["item_id"]
    agent.add({"context_id": "room1", "text": "x", "speaker": None, "metadata": None, "importance": 0.1}, ctx("add"))
    got = agent.get_context({"context_id": "room1", "speaker": None, "max_items": None}, ctx("get_context"))
    assert [i["importance"] for i in got["items"]] == [pytest.approx(0.8), pytest.approx(0.1)]
    assert agent.get_context_text({"context_id": "room1", "speaker": "ana", "max_items": None},
                                  ctx("get_context_text"))["context_text"] == "[ana]: please remember"
    assert agent.context_info({"context_id": "room1"}, ctx("context_info"))["speakers"] == ["ana"]
    assert agent.prune_context({"context_id": "room1"}, ctx("prune_context")) == {"context_id": "room1", "pruned": 0}
    assert agent.clear_context({"context_id": "room1", "speaker": None}, ctx("clear_context"))["cleared"] == 2
    assert agent.clear_context({"context_id": "nowhere", "speaker": None}, ctx("clear_context"))["cleared"] == 0


def test_route_actions(agent):
    agent.context_add({"context_id": "r", "text": "hi", "speaker": None, "metadata": None, "importance": None},
                      ctx("context_add"))
    assert agent.context_get({"context_id": "r", "speaker": None, "max_items": "1"}, ctx("context_get"))["items"][0][
        "text"] == "hi"
    with pytest.raises(BadRequest) as err:
        agent.context_get({"context_id": "r", "speaker": None, "max_items": "many"}, ctx("context_get"))
    assert err.value.details["field"] == "max_items"
    assert agent.context_clear({"context_id": "r", "speaker": None}, ctx("context_clear"))["cleared"] == 1


def test_native_schema_names_the_field():
    from schemas.memory_hub import context_manager as schema

    for args, field in [({}, "text"), ({"text": 1}, "text"), ({"text": "x", "importance": 2}, "importance"),
                        ({"text": "x", "bogus": 1}, "bogus")]:
        with pytest.raises(BadRequest) as err:
            schema.ADD.validate(args)
        assert err.value.details["field"] == field
