"""MemoryClient end to end: MemoryHub started as a process. Port 5713 answers health as the legacy BaseAgent
did, the MemoryClient ``health_check``/``reset_circuit_breaker`` forms, and every request MemoryClient sent to
MemoryOrchestratorService (legacy-protocol.md §1.1), served directly; 6713 answers any message with health.
The key/value store on the native port (action and route form) and over HTTP.
"""
from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest

from bus.errors import BadRequest, NotFound, TooLarge, UnknownAction
from tests.support.hubproc import HubProcess

MAIN, HEALTH = 5713, 6713
AGENT = "MemoryClient"


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    config = {"memory_client": {"max_value_bytes": 2048}}
    with HubProcess("memory_hub", tmp_path_factory.mktemp("mc-e2e"), config=config) as running:
        yield running


def send(hub, action: str, data: dict) -> dict:
    return hub.legacy_request(MAIN, {"action": action, "data": data})


# ------------------------------------------------------------------------------------------- legacy port

def test_health_forms(hub):
    for request in ({"action": "ping"}, {"action": "health"}):
        reply = hub.legacy_request(MAIN, request)
        assert reply["status"] == "HEALTHY" and reply["service"] == "MemoryClient"
        assert {"uptime_seconds", "request_count", "ready", "initialized", "message", "timestamp"} <= set(reply)
    for request in ({"action": "health_check"}, "anything", {}):
        assert hub.legacy_request(HEALTH, request)["status"] == "HEALTHY"
    check = hub.legacy_request(MAIN, {"action": "health_check"})
    assert check == {"status": "success", "agent": "MemoryClient", "connected": True,
                     "circuit_breaker": {"state": "CLOSED", "failure_count": 0, "last_failure_time": 0.0,
                                         "failure_threshold": 3, "reset_timeout": 60.0}}
    assert hub.legacy_request(MAIN, {"action": "reset_circuit_breaker"}) == \
        {"status": "success", "message": "Circuit breaker reset successfully", "new_state": "CLOSED"}


def test_every_request_memory_client_sent(hub):
    session = send(hub, "create_session", {"user_id": "ana", "session_type": "conversation",
                                           "created_by": "SessionMemoryAgent", "metadata": {"lang": "en"}})
    assert session["status"] == "success"
    session_id = session["session_id"]
    add = {"content": "hello from ana", "memory_type": "interaction", "memory_tier": "short", "importance": 0.5,
           "created_by": "SessionMemoryAgent", "metadata": {"role": "user"}, "tags": ["user"], "parent_id": session_id}
    first = send(hub, "add_memory", add)
    second = send(hub, "add_memory", {**add, "content": "hello again"})
    assert first["status"] == second["status"] == "success"
    assert send(hub, "get_memory", {"memory_id": first["memory_id"]})["memory"]["metadata"] == {"role": "user"}
    assert send(hub, "search_memory", {"query": "hello", "limit": 10, "memory_type": "interaction",
                                       "parent_id": session_id})["count"] == 2
    semantic = send(hub, "semantic_search", {"query": "again", "k": 5, "filters": {"parent_id": session_id}})
    assert [r["memory_id"] for r in semantic["results"]] == [second["memory_id"]]
    children = send(hub, "get_children", {"parent_id": session_id, "limit": 20, "sort_field": "created_at",
                                          "sort_order": "asc"})
    assert [c["content"] for c in children["children"]] == ["hello from ana", "hello again"]
    assert send(hub, "update_memory", {"memory_id": first["memory_id"],
                                       "update_data": {"metadata": {"expired": True}}}) == {"status": "success"}
    assert send(hub, "add_relationship", {"source_id": second["memory_id"], "target_id": first["memory_id"],
                                          "relationship_type": "follows", "strength": 1.0}) == {"status": "success"}
    assert len(send(hub, "get_related", {"memory_id": second["memory_id"]})["related_memories"]) == 1
    assert send(hub, "reinforce_memory", {"memory_id": first["memory_id"], "reinforcement_factor": 1.2})[
        "new_importance"] == pytest.approx(0.6)
    batch = send(hub, "batch_add_memories", {"memories": [{"content": "m1"}, {"content": "m2"}]})
    assert batch["status"] == "success"
    assert send(hub, "batch_get_memories", {"memory_ids": batch["memory_ids"]})["count"] == 2
    group = send(hub, "create_context_group", {"name": "greetings"})["group_id"]
    assert send(hub, "add_to_group", {"memory_id": first["memory_id"], "group_id": group}) == {"status": "success"}
    assert send(hub, "get_memories_by_group", {"group_id": group})["count"] == 1
    assert send(hub, "delete_memory", {"memory_id": session_id, "cascade": True})["status"] == "success"
    assert send(hub, "get_memory", {"memory_id": first["memory_id"]})["status"] == "error"


def test_other_requests(hub):
    assert hub.legacy_request(MAIN, {"action": "kv_get", "key": "x"}) == \
        {"status": "error", "message": "This client does not accept remote commands"}
    assert hub.legacy_request(MAIN, [1, 2]) == {"status": "error", "message": "Invalid request format"}
    assert send(hub, "get_memory", {}) == {"status": "error", "message": "memory_id is required."}


# ------------------------------------------------------------------------------------------- key/value

def test_kv_actions_and_routes(client):
    assert client.call(AGENT, "kv_set", {"key": "user:1", "value": {"name": "Ana"}})["created"] is True
    assert client.call(AGENT, "kv_get", {"key": "user:1"})["value"] == {"name": "Ana"}
    assert client.route("PUT", "/kv/user:2", {"value": [1, 2], "ttl": 600})["expires_at"] is not None
    assert client.route("PUT", "/kv/paths/with/slashes", "bare value")["created"] is True
    assert client.route("GET", "/kv/paths/with/slashes")["value"] == "bare value"
    assert client.route("GET", "/kv/user:2")["value"] == [1, 2]
    assert client.route("GET", "/kv", {"prefix": "user:"})["keys"] == ["user:1", "user:2"]
    assert client.call(AGENT, "kv_list", {"prefix": "user:", "limit": 1})["keys"] == ["user:1"]
    assert client.route("DELETE", "/kv/user:2") == {"key": "user:2", "deleted": True}
    with pytest.raises(NotFound):
        client.route("GET", "/kv/user:2")
    with pytest.raises(NotFound):
        client.call(AGENT, "kv_delete", {"key": "user:2"})


def test_kv_bad_input(client):
    with pytest.raises(BadRequest) as err:
        client.call(AGENT, "kv_set", {"value": 1})
    assert err.value.details["field"] == "key"
    with pytest.raises(BadRequest) as err:
        client.call(AGENT, "kv_set", {"key": "k", "value": 1, "ttl": "soon"})
    assert err.value.details["field"] == "ttl"
    with pytest.raises(BadRequest) as err:
        client.route("PUT", "/kv/k", {"ttl": 5})
    assert err.value.details["field"] == "value"
    with pytest.raises(TooLarge) as err:
        client.call(AGENT, "kv_set", {"key": "big", "value": "x" * 3000})
    assert err.value.details["field"] == "value"
    with pytest.raises(UnknownAction):
        client.route("POST", "/kv/k", {"value": 1})


def test_kv_over_http(hub):
    token = hub.token()

    def http(method: str, path: str, body=None) -> tuple[int, dict]:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(hub.http_url + path, data=data, method=method,
                                     headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                return resp.status, json.loads(resp.read())
        except urllib.error.HTTPError as err:
            return err.code, json.loads(err.read())

    assert http("PUT", "/kv/curl:1", {"value": {"ok": True}})[0] == 200
    status, body = http("GET", "/kv/curl:1")
    assert status == 200 and json.dumps(body).count('"ok": true') == 1
    status, body = http("GET", "/kv?prefix=curl:&limit=5")
    assert status == 200 and "curl:1" in json.dumps(body)
    assert http("DELETE", "/kv/curl:1")[0] == 200
    assert http("GET", "/kv/curl:1")[0] == 404
