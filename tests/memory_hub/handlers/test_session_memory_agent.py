"""SessionMemoryAgent against a real migrated SQLite and a real redis-server (no hub process): sessions as
memories, interactions in order, Redis db1 TTL copies, expiry with events, legacy replies, native actions.
"""
from __future__ import annotations

import time

import pytest
from sqlalchemy import func, select

from agents.memory_hub.handlers.session_memory_agent import SessionMemoryAgent
from agents.memory_hub.stores.sql_models import Memory, Session
from bus.errors import BadRequest, Conflict, NotFound, TooLarge
from bus.handler import CallContext
from schemas.memory_hub import session_memory_agent as schema


@pytest.fixture
def make(compose_hub):
    def make(sql_store, redis_store=None, **sections) -> SessionMemoryAgent:
        return compose_hub(sql_store, redis_store, **sections).handler(SessionMemoryAgent)
    return make


@pytest.fixture
def sma(make, sql_store, redis_store) -> SessionMemoryAgent:
    return make(sql_store, redis_store)


def legacy(sma, action: str, **fields) -> dict:
    return sma.handle_legacy({"action": action, **fields}, 5574)


def native(sma, action: str, **args):
    spec, fn = sma.action_table()[action]
    return fn(spec.schema.validate(args), CallContext(agent=sma.name, action=action))


def events(sma, topic: str) -> list[dict]:
    return [fields for name, fields in sma.sessions.events.events if name == topic]


def new_session(sma, **fields) -> str:
    reply = legacy(sma, "create_session", **fields)
    assert reply["status"] == "success" and set(reply) == {"status", "session_id"}
    return reply["session_id"]


def test_create_session_stores_a_session_and_its_memory(sma, sql_store, redis_store):
    session_id = new_session(sma, user_id="ana", metadata={"lang": "en"}, session_type="task")
    with sql_store.session() as s:
        session = s.get(Session, session_id)
        memory = s.get(Memory, session_id)
        assert (session.user_id, session.session_type, session.created_by) == ("ana", "task", "SessionMemoryAgent")
        assert session.meta["lang"] == "en" and session.meta["agent"] == "SessionMemoryAgent"
        assert "created_at" in session.meta and not session.expired
        assert memory.memory_type == "session" and memory.session_id == session_id
    assert 3500 < native(sma, "get_session", session_id=session_id)["ttl_s"] <= 3600
    assert sma.sessions.cache.get(session_id)["user_id"] == "ana"             # copied by that read
    assert events(sma, "session.created") == [{"session_id": session_id, "user_id": "ana", "session_type": "task"}]
    defaults = native(sma, "get_session", session_id=new_session(sma))
    assert (defaults["user_id"], defaults["session_type"]) == ("default", "conversation")


def test_interactions_come_back_in_order(sma):
    session_id = new_session(sma)
    turns = [("user", "hi"), ("assistant", "hello!"), ("User", "what time is it?"), ("assistant", "noon")]
    ids = []
    for role, content in turns:
        reply = legacy(sma, "add_interaction", session_id=session_id, role=role, content=content,
                       metadata={"lang": "en"})
        assert reply["status"] == "success" and reply["message"] == "Interaction added"
        ids.append(reply["interaction_id"])
    assert legacy(sma, "get_context", session_id=session_id) == \
        {"status": "success", "context": [{"role": r, "content": c} for r, c in turns]}
    assert legacy(sma, "get_context", session_id=session_id, limit=2)["context"] == \
        [{"role": r, "content": c} for r, c in turns[2:]]
    memory = sma.sessions.memories.get(ids[2], touch=False)
    assert memory["memory_type"] == "interaction" and memory["parent_id"] == session_id
    assert memory["session_id"] == session_id and memory["tags"] == ["user"]
    assert memory["memory_tier"] == "short" and memory["importance"] == 0.5
    assert memory["metadata"]["role"] == "User" and memory["metadata"]["lang"] == "en"
    assert "timestamp" in memory["metadata"]
    assert {"memory_id": ids[0], "memory_type": "interaction", "namespace": "default", "op": "add"} in \
        events(sma, "memory.added")


def test_unknown_session_is_created_on_first_interaction(make, sma, tmp_path, sql_store):
    assert legacy(sma, "add_interaction", session_id="my-own-id", role="user", content="hi")["status"] == "success"
    assert native(sma, "get_session", session_id="my-own-id")["context"] == [{"role": "user", "content": "hi"}]
    strict = make(sql_store, session_memory={"auto_create": False})
    assert legacy(strict, "add_interaction", session_id="other", role="user", content="hi") == \
        {"status": "error", "message": "Session other not found."}


def test_delete_session_removes_everything(sma, sql_store, redis_store):
    session_id = new_session(sma)
    for i in range(3):
        legacy(sma, "add_interaction", session_id=session_id, role="user", content=f"turn {i}")
    assert legacy(sma, "delete_session", session_id=session_id) == {"status": "success", "message": "Session deleted"}
    with sql_store.session() as s:
        assert s.execute(select(func.count()).select_from(Memory)).scalar_one() == 0
        assert s.get(Session, session_id) is None
    assert sma.sessions.cache.get(session_id) is None
    assert legacy(sma, "get_context", session_id=session_id) == {"status": "success", "context": []}
    assert legacy(sma, "delete_session", session_id=session_id) == \
        {"status": "error", "message": f"Memory with ID {session_id} not found."}


def test_search_interactions(sma):
    first, second = new_session(sma), new_session(sma)
    legacy(sma, "add_interaction", session_id=first, role="user", content="I love green tea")
    legacy(sma, "add_interaction", session_id=second, role="user", content="green tea again")
    sma.sessions.memories.add({"content": "green tea fact", "memory_type": "knowledge_fact"})
    everywhere = legacy(sma, "search_interactions", query="green tea")
    assert everywhere["status"] == "success" and len(everywhere["results"]) == 2
    assert all(r["memory_type"] == "interaction" for r in everywhere["results"])
    scoped = legacy(sma, "search_interactions", query="tea", session_id=first, limit=5)["results"]
    assert [r["content"] for r in scoped] == ["I love green tea"]
    assert native(sma, "search_interactions", query="tea", limit=1)["count"] == 1


def test_expiry_marks_idle_sessions_and_publishes(make, tmp_path, sql_store, redis_store):
    sma = make(sql_store, redis_store, session_memory={"session_timeout_s": 60.0})
    idle, busy = new_session(sma, user_id="ana"), new_session(sma, user_id="bo")
    later = time.time() + 120
    with sql_store.transaction() as s:      # bo was active just before `later`
        s.get(Session, busy).last_active_at = later - 10
    assert sma.sessions.expire_once(later) == [idle]
    session = native(sma, "get_session", session_id=idle)
    assert session["expired"] is True and session["expired_at"] == later
    assert session["metadata"]["expired"] is True and "expired_at" in session["metadata"]
    assert session["metadata"]["agent"] == "SessionMemoryAgent"            # merged, not replaced
    memory = sma.sessions.memories.get(idle, touch=False)
    assert memory["metadata"]["expired"] is True and memory["metadata"]["user_id"] == "ana"
    assert events(sma, "session.expired") == [{"session_id": idle, "user_id": "ana", "expired_at": later}]
    assert sma.sessions.cache.get(idle)["expired"] is True                  # the copy made by the read above
    assert sma.sessions.expire_once(later) == []                           # once only
    assert legacy(sma, "add_interaction", session_id=idle, role="user", content="still here")["status"] == "success"


def test_expiry_task_runs_in_the_background(make, tmp_path, sql_store):
    sma = make(sql_store, session_memory={"session_timeout_s": 0.01, "cleanup_interval_s": 0.05})
    session_id = new_session(sma)
    sma.start()
    try:
        deadline = time.monotonic() + 20
        while not events(sma, "session.expired") and time.monotonic() < deadline:
            time.sleep(0.02)
        assert events(sma, "session.expired")[0]["session_id"] == session_id
        assert sma.health_checks()["session_expiry"][0] is True
    finally:
        sma.stop()


@pytest.mark.parametrize("request_, message", [
    ({"action": "add_interaction", "session_id": "s", "role": "user"}, "Missing required parameters"),
    ({"action": "add_interaction", "session_id": "s", "content": "x"}, "Missing required parameters"),
    ({"action": "add_interaction", "role": "user", "content": "x"}, "Missing required parameters"),
    ({"action": "add_interaction", "session_id": "s", "role": 3, "content": "x"}, "role must be a string"),
    ({"action": "add_interaction", "session_id": "s", "role": "user", "content": ["x"]},
     "Invalid memory format: content must be a string"),
    ({"action": "add_interaction", "session_id": "s", "role": "user", "content": "x", "metadata": 1},
     "metadata must be an object"),
    ({"action": "get_context"}, "Missing session_id"),
    ({"action": "get_context", "session_id": "s", "limit": "all"}, "limit must be an integer between 1 and 1000"),
    ({"action": "delete_session"}, "Missing session_id"),
    ({"action": "search_interactions"}, "Missing query"),
    ({"action": "search_interactions", "query": ""}, "Missing query"),
    ({"action": "create_session", "user_id": 5}, "user_id must be a string"),
    ({"action": "create_session", "metadata": "x"}, "metadata must be an object"),
    ({"action": "fly"}, "Unknown action: fly"),
])
def test_bad_legacy_input_gets_the_legacy_error_reply(sma, request_, message):
    assert sma.handle_legacy(request_, 5574) == {"status": "error", "message": message}


def test_health_forms(sma):
    assert legacy(sma, "health_check") == {"status": "success", "agent": "SessionMemoryAgent", "healthy": True}
    for reply in (legacy(sma, "ping"), legacy(sma, "health"), sma.legacy_health(6583)):
        assert reply["status"] == "HEALTHY" and reply["service"] == "SessionMemoryAgent"
        assert {"uptime_seconds", "request_count", "ready", "timestamp"} <= set(reply)
    assert sma.handle_legacy("hello", 5574) == {"status": "error", "message": "Invalid request format"}


def test_oversized_interaction(make, tmp_path, sql_store):
    sma = make(sql_store, memory_orchestrator={"max_content_bytes": 10})
    session_id = new_session(sma)
    assert legacy(sma, "add_interaction", session_id=session_id, role="user", content="x" * 11) == \
        {"status": "error", "message": "Invalid memory format: content is 11 bytes, over the 10-byte limit"}
    with pytest.raises(TooLarge):
        native(sma, "add_interaction", session_id=session_id, role="user", content="x" * 11)


def test_native_actions(sma):
    session = native(sma, "create_session", user_id="ana", session_id="s-1", metadata={"a": 1})
    assert session["session_id"] == "s-1" and session["metadata"] == {"a": 1}
    with pytest.raises(Conflict):
        native(sma, "create_session", session_id="s-1")
    assert native(sma, "add_interaction", session_id="s-1", role="user", content="hi")["session_id"] == "s-1"
    assert native(sma, "get_context", session_id="s-1", limit=5) == \
        {"session_id": "s-1", "context": [{"role": "user", "content": "hi"}]}
    got = native(sma, "get_session", session_id="s-1")
    assert got["context"] == [{"role": "user", "content": "hi"}] and got["ttl_s"] > 3000
    merged = native(sma, "put_session", session_id="s-1", metadata={"b": 2})
    assert merged["created"] is False and merged["metadata"] == {"a": 1, "b": 2}
    created = native(sma, "put_session", session_id="s-2", user_id="bo")
    assert created["created"] is True and created["user_id"] == "bo"
    assert sorted(native(sma, "expire_sessions", now=time.time() + 7200)["expired"]) == ["s-1", "s-2"]
    assert len(native(sma, "delete_session", session_id="s-1")["deleted"]) == 2
    with pytest.raises(NotFound):
        native(sma, "get_session", session_id="s-1")
    with pytest.raises(BadRequest) as err:
        schema.ADD_INTERACTION.validate({"session_id": "s", "role": "user"})
    assert err.value.details["field"] == "content"
