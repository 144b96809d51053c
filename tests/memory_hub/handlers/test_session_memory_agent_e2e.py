"""SessionMemoryAgent end to end: MemoryHub started as a process, driven on 5574 by a REQ client sending the
flat JSON of the intended protocol (legacy-protocol.md §1.2); health on 6583 and 6574; native actions and the
/session routes; session.created and session.expired on the events port (short timeout configured).
"""
from __future__ import annotations

import time

import msgpack
import pytest
import zmq

from bus.errors import BadRequest, Conflict, NotFound
from tests.support.hubproc import HubProcess

MAIN = 5574
AGENT = "SessionMemoryAgent"


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    config = {"session_memory": {"session_timeout_s": 3.0, "cleanup_interval_s": 0.2, "touch_interval_s": 0.0}}
    with HubProcess("memory_hub", tmp_path_factory.mktemp("sma-e2e"), config=config) as running:
        yield running


def send(hub, action: str, **fields) -> dict:
    return hub.legacy_request(MAIN, {"action": action, **fields})


def test_every_legacy_action(hub):
    created = send(hub, "create_session", user_id="ana", metadata={"device": "kitchen"}, session_type="conversation")
    assert created["status"] == "success" and set(created) == {"status", "session_id"}
    session_id = created["session_id"]
    turns = [("user", "what's for dinner?"), ("assistant", "pasta with tomato sauce"), ("user", "great, thanks")]
    for role, content in turns:
        reply = send(hub, "add_interaction", session_id=session_id, role=role, content=content, metadata={"turn": 1})
        assert reply["status"] == "success" and reply["message"] == "Interaction added"
        assert reply["interaction_id"].startswith("mem-")
    assert send(hub, "get_context", session_id=session_id, limit=20) == \
        {"status": "success", "context": [{"role": r, "content": c} for r, c in turns]}
    found = send(hub, "search_interactions", query="tomato", session_id=session_id, limit=10)
    contents = [r["content"] for r in found["results"]]       # semantic: the food question may follow
    assert found["status"] == "success" and contents[0] == "pasta with tomato sauce" and "great, thanks" not in contents
    assert send(hub, "health_check") == {"status": "success", "agent": "SessionMemoryAgent", "healthy": True}
    assert send(hub, "delete_session", session_id=session_id) == {"status": "success", "message": "Session deleted"}
    assert send(hub, "get_context", session_id=session_id) == {"status": "success", "context": []}


def test_health_ports(hub):
    for port in (6583, 6574):
        for request in ({"action": "health"}, "x"):
            reply = hub.legacy_request(port, request)
            assert reply["status"] == "HEALTHY" and reply["service"] == "SessionMemoryAgent"
    assert send(hub, "ping")["status"] == "HEALTHY"


@pytest.mark.parametrize("request_, message", [
    ({"action": "add_interaction", "session_id": "s", "role": "user"}, "Missing required parameters"),
    ({"action": "get_context"}, "Missing session_id"),
    ({"action": "delete_session", "session_id": ""}, "Missing session_id"),
    ({"action": "search_interactions", "session_id": "s"}, "Missing query"),
    ({"action": "get_context", "session_id": "s", "limit": 0}, "limit must be an integer between 1 and 1000"),
    ({"action": "delete_session", "session_id": "never-existed"}, "Memory with ID never-existed not found."),
    ({"action": "whatever"}, "Unknown action: whatever"),
])
def test_bad_legacy_input(hub, request_, message):
    assert hub.legacy_request(MAIN, request_) == {"status": "error", "message": message}


def test_native_actions_and_routes(client):
    session = client.call(AGENT, "create_session", {"user_id": "bo", "session_id": "sess-native"})
    assert session["session_id"] == "sess-native" and session["expired"] is False
    with pytest.raises(Conflict):
        client.call(AGENT, "create_session", {"session_id": "sess-native"})
    assert client.call(AGENT, "add_interaction", {"session_id": "sess-native", "role": "user", "content": "hi"})[
        "interaction_id"]
    assert client.route("POST", "/session/sess-native/interaction", {"role": "assistant", "content": "hello"})[
        "session_id"] == "sess-native"
    context = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]
    assert client.route("GET", "/session/sess-native/context")["context"] == context
    got = client.route("GET", "/session/sess-native")
    assert got["user_id"] == "bo" and got["context"] == context
    assert client.route("PUT", "/session/sess-native", {"metadata": {"mood": "good"}})["metadata"] == {"mood": "good"}
    assert client.route("PUT", "/session/sess-put", {"user_id": "cy"})["created"] is True
    assert client.call(AGENT, "search_interactions", {"query": "hello"})["count"] >= 1
    assert len(client.route("DELETE", "/session/sess-native")["deleted"]) == 3
    with pytest.raises(NotFound):
        client.route("GET", "/session/sess-native")
    with pytest.raises(BadRequest) as err:
        client.call(AGENT, "add_interaction", {"session_id": "s", "role": "user"})
    assert err.value.details["field"] == "content"


def test_session_events(hub, client):
    sock = zmq.Context.instance().socket(zmq.SUB)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.SUBSCRIBE, b"session.")
    sock.setsockopt(zmq.RCVTIMEO, 200)
    sock.connect(hub.events_endpoint)
    seen: dict[str, set[str]] = {}
    try:
        session_id = None
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if session_id is None or "session.created" not in seen.get(session_id, set()):
                session_id = send(hub, "create_session", user_id="evt")["session_id"]   # slow joiner: retry
            try:
                topic, payload = sock.recv_multipart()
            except zmq.Again:
                continue
            event = msgpack.unpackb(payload)
            seen.setdefault(event["session_id"], set()).add(topic.decode())
            if seen[event["session_id"]] >= {"session.created", "session.expired"}:
                expired = client.call(AGENT, "get_session", {"session_id": event["session_id"]})
                assert expired["expired"] is True and expired["metadata"]["expired"] is True
                assert event["user_id"] == "evt"
                return
        pytest.fail(f"no session.created + session.expired pair seen: {seen}")
    finally:
        sock.close()
