"""ExperienceTracker against a real migrated SQLite (no hub process): experiences kept by the hub, expiry,
legacy replies (the intended `success` shapes), native actions and bad input.
"""
from __future__ import annotations

import time

import pytest

from agents.memory_hub.experiences import ExperienceStore, parse_time
from agents.memory_hub.handlers.experience_tracker import ExperienceTracker
from agents.memory_hub.stores.sql import SqlStore
from bus.errors import BadRequest, NotFound
from bus.handler import CallContext


@pytest.fixture
def agent(sql_store) -> ExperienceTracker:
    return ExperienceTracker(sql_store)


def legacy(agent: ExperienceTracker, request) -> dict:
    return agent.handle_legacy(request, 7112)


def ctx(action: str) -> CallContext:
    return CallContext(agent="ExperienceTracker", action=action)


def test_track_and_get_experiences_legacy(agent):
    first = legacy(agent, {"action": "track_experience", "content": "user liked jazz", "importance_score": 0.9,
                           "metadata": {"source": "music"}, "expires_at": "2999-01-01T00:00:00+00:00"})
    assert first["status"] == "success" and first["experience_id"].startswith("exp-")
    second = legacy(agent, {"action": "track_experience", "content": "user asked the weather"})
    reply = legacy(agent, {"action": "get_experiences"})
    assert reply["status"] == "success"
    assert [e["experience_id"] for e in reply["experiences"]] == [second["experience_id"], first["experience_id"]]
    newest, oldest = reply["experiences"]
    assert newest == {"experience_id": second["experience_id"], "content": "user asked the weather",
                      "memory_type": "experience", "importance_score": 0.5, "metadata": {},
                      "created_at": newest["created_at"], "expires_at": None}
    assert oldest["importance_score"] == 0.9 and oldest["metadata"] == {"source": "music"}
    assert oldest["expires_at"].startswith("2999-01-01T00:00:00")
    assert legacy(agent, {"action": "get_experiences", "limit": 1})["experiences"][0]["content"] == \
        "user asked the weather"


def test_expired_experiences_vanish(agent, sql_store):
    legacy(agent, {"action": "track_experience", "content": "old", "expires_at": "2001-01-01T00:00:00"})
    legacy(agent, {"action": "track_experience", "content": "live"})
    assert [e["content"] for e in legacy(agent, {"action": "get_experiences"})["experiences"]] == ["live"]
    store = ExperienceStore(sql_store)
    store.track("soon gone", expires_at=time.time() - 1)
    assert [e["content"] for e in store.recent(10)] == ["live"]


def test_experiences_survive_a_new_store(sql_url):
    first = SqlStore(sql_url)
    exp_id = ExperienceStore(first).track("kept")["exp_id"]
    first.close()
    second = SqlStore(sql_url)
    try:
        assert ExperienceStore(second).get(exp_id)["content"] == "kept"
    finally:
        second.close()


@pytest.mark.parametrize("request_, message", [
    ({"action": "track_experience"}, "Missing content parameter"),
    ({"action": "track_experience", "content": ""}, "Missing content parameter"),
    ({"action": "track_experience", "content": 5}, "Invalid content parameter"),
    ({"action": "track_experience", "content": "x", "importance_score": "high"}, "Invalid importance_score parameter"),
    ({"action": "track_experience", "content": "x", "importance_score": 3}, "Invalid importance_score parameter"),
    ({"action": "track_experience", "content": "x", "metadata": [1]}, "Invalid metadata parameter"),
    ({"action": "track_experience", "content": "x", "expires_at": "next week"}, "Invalid expires_at parameter"),
    ({"action": "track_experience", "content": "x" * 70000}, "Invalid content parameter"),
    ({"action": "get_experiences", "limit": "ten"}, "Invalid limit parameter"),
    ({"action": "get_experiences", "limit": 0}, "Invalid limit parameter"),
    ({"action": "nope"}, "Unknown action: nope"),
])
def test_bad_legacy_input(agent, request_, message):
    assert legacy(agent, request_) == {"status": "error", "message": message}


def test_health_replies(agent):
    for reply in (agent.legacy_health(8112), legacy(agent, {"action": "ping"})):
        assert reply["status"] == "ok" and reply["service"] == "ExperienceTracker"
        assert reply["port"] == 7112 and reply["health_port"] == 8112
        assert reply["initialization_status"] == "complete" and "timestamp" in reply
    assert legacy(agent, "track") == {"status": "error", "message": "Invalid request format"}


def test_native_actions(agent):
    exp = agent.track_experience({"content": {"event": "door opened"}, "importance_score": 0.7, "metadata": None,
                                  "expires_at": None, "exp_id": None}, ctx("track_experience"))
    assert exp["content"] == {"event": "door opened"} and exp["memory_type"] == "experience"
    assert isinstance(exp["created_at"], float)
    assert agent.get_experience({"exp_id": exp["exp_id"]}, ctx("get_experience")) == exp
    agent.put_experience({"exp_id": "mine", "content": "v1", "importance_score": 0.2, "metadata": None,
                          "expires_at": None}, ctx("put_experience"))
    replaced = agent.put_experience({"exp_id": "mine", "content": "v2", "importance_score": 0.3, "metadata": {"a": 1},
                                     "expires_at": 4102444800.0}, ctx("put_experience"))
    assert replaced["content"] == "v2" and replaced["expires_at"] == 4102444800.0
    listed = agent.get_experiences({"limit": 10, "min_importance": 0.5}, ctx("get_experiences"))["experiences"]
    assert [e["exp_id"] for e in listed] == [exp["exp_id"]]
    assert agent.delete_experience({"exp_id": "mine"}, ctx("delete_experience")) == {"exp_id": "mine", "deleted": True}
    with pytest.raises(NotFound):
        agent.get_experience({"exp_id": "mine"}, ctx("get_experience"))


def test_parse_time():
    assert parse_time(None) is None
    assert parse_time(12.5) == 12.5
    assert parse_time("1970-01-01T00:01:00Z") == 60.0
    for bad in ("tomorrow", True, [1]):
        with pytest.raises(BadRequest):
            parse_time(bad)
