"""UnifiedMemoryReasoningAgent end to end: MemoryHub as a process; legacy REQ/JSON clients on 7105 and both health
ports (7106, 8105), native actions, and the /embedding/{query} route form (on a hub without search: unavailable,
after checking the query).
"""
from __future__ import annotations

import pytest

from bus.errors import BadRequest, NotFound, Unavailable
from tests.support.hubproc import HubProcess

MAIN, HEALTH_CODE, HEALTH_YAML = 7105, 7106, 8105


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    with HubProcess("memory_hub", tmp_path_factory.mktemp("umra-e2e")) as running:
        yield running


def send(hub: HubProcess, request) -> dict:
    return hub.legacy_request(MAIN, request)


def test_twins_as_legacy_clients_send_them(hub):
    assert send(hub, {"action": "update_twin", "user_id": "ana", "twin_data": {"voice": "warm", "lang": "tl"}}) == \
        {"status": "ok"}
    assert send(hub, {"action": "get_twin", "user_id": "ana"}) == {"status": "ok",
                                                                   "twin": {"voice": "warm", "lang": "tl"}}
    assert send(hub, {"action": "get_twin", "user_id": "nobody"}) == {"status": "ok", "twin": {}}
    assert send(hub, {"action": "delete_twin", "user_id": "ana"}) == {"status": "ok"}
    assert send(hub, {"action": "delete_twin", "user_id": "ana"}) == {"status": "error", "reason": "User not found"}
    assert send(hub, {"action": "update_twin", "user_id": "ana"}) == {"status": "error",
                                                                      "reason": "No twin data provided"}


def test_interactions_and_context_as_legacy_clients_send_them(hub):
    assert send(hub, {"action": "get_context", "session_id": "sess-1"})["context"]["context"] == \
        "New session: sess-1"
    for i in range(51):
        kind = ("code", "user_query", "system_response", "error")[i % 4]
        assert send(hub, {"action": "add_interaction", "session_id": "sess-1", "interaction_type": kind,
                          "content": f"step {i}: http api connection", "metadata": {"i": i}}) == {"status": "ok"}
    reply = send(hub, {"action": "get_context", "session_id": "sess-1", "max_tokens": 2000})
    assert reply["status"] == "ok"
    context = reply["context"]
    assert context["code_context"].startswith("Code Summary:\nTotal snippets: 13\nDetected domains: web functionality")
    assert context["conversation_summary"].startswith("Conversation Summary:\nTotal exchanges: 13")
    assert context["errors_encountered"][0] == {"type": "connection", "message": "step 47: http api connection"}
    assert isinstance(context["last_updated"], float)


def test_error_patterns_as_legacy_clients_send_them(hub):
    assert send(hub, {"action": "add_error_pattern", "error_type": "cuda_oom", "pattern": r"CUDA out of memory",
                      "solution": "unload the largest model"}) == {"status": "ok"}
    assert send(hub, {"action": "get_error_solution", "error_message": "RuntimeError: cuda OUT OF MEMORY. Tried"}) == \
        {"status": "ok", "solution": "unload the largest model"}
    assert send(hub, {"action": "get_error_solution", "error_message": "disk full"}) == {"status": "ok",
                                                                                      "solution": None}


@pytest.mark.parametrize("request_, reason", [
    ({"action": "add_interaction", "session_id": "s"}, "Missing required fields"),
    ({"action": "add_interaction", "session_id": "s", "interaction_type": "code", "content": 12}, "Invalid content"),
    ({"action": "get_context"}, "Missing session_id"),
    ({"action": "get_context", "session_id": "s", "max_tokens": -5}, "Invalid max_tokens"),
    ({"action": "add_error_pattern", "pattern": "x"}, "Missing required fields"),
    ({"action": "get_error_solution"}, "Missing error_message"),
    ({"action": "get_error_solution", "error_message": "e" * 30000}, "Invalid error_message"),
    ({"action": "update_twin", "user_id": {"id": 1}, "twin_data": {"a": 1}}, "Invalid user_id"),
    ({"action": "reason_about_life"}, "Unknown action"),
])
def test_bad_legacy_input(hub, request_, reason):
    assert send(hub, request_) == {"status": "error", "reason": reason}


def test_invalid_regex_is_refused(hub):
    reply = send(hub, {"action": "add_error_pattern", "error_type": "bad", "pattern": "*oops"})
    assert reply["status"] == "error" and reply["reason"].startswith("Invalid pattern")


@pytest.mark.parametrize("port", [HEALTH_CODE, HEALTH_YAML])
def test_both_health_ports(hub, port):
    reply = hub.legacy_request(port, {"action": "health_check"})
    assert reply["status"] == "ok" and reply["service"] == "unified_memory_reasoning_agent"
    assert {"request_count", "error_count", "last_request_time", "health_check_count", "update_count", "get_count",
            "delete_count", "successful_updates", "failed_updates", "total_twins", "total_sessions",
            "total_error_patterns", "ready", "initialized", "message", "uptime"} <= set(reply)


@pytest.mark.parametrize("action", ["ping", "health", "health_check"])
def test_health_actions_on_the_main_port(hub, action):
    assert send(hub, {"action": action})["service"] == "unified_memory_reasoning_agent"


def test_native_actions(client):
    assert client.call("UnifiedMemoryReasoningAgent", "update_twin", {"user_id": "bo", "twin_data": {"age": 9}}) == \
        {"user_id": "bo"}
    assert client.call("UnifiedMemoryReasoningAgent", "get_twin", {"user_id": "bo"})["twin"] == {"age": 9}
    assert client.call("UnifiedMemoryReasoningAgent", "delete_twin", {"user_id": "bo"})["deleted"] is True
    with pytest.raises(NotFound):
        client.call("UnifiedMemoryReasoningAgent", "get_twin", {"user_id": "bo"})
    added = client.call("UnifiedMemoryReasoningAgent", "add_interaction",
                        {"session_id": "n1", "interaction_type": "user_query", "content": "play music"})
    assert added["session_id"] == "n1" and added["summarized"] is False
    history = client.call("UnifiedMemoryReasoningAgent", "get_interactions", {"session_id": "n1"})
    assert history["interactions"][0]["content"] == "play music"
    context = client.call("UnifiedMemoryReasoningAgent", "session_context", {"session_id": "n1"})
    assert "User: play music..." in context["context"]["conversation_summary"]
    client.call("UnifiedMemoryReasoningAgent", "add_error_pattern", {"error_type": "net", "pattern": "unreachable"})
    found = client.call("UnifiedMemoryReasoningAgent", "get_error_solution", {"error_message": "host unreachable"})
    assert found["match"]["error_type"] == "net" and found["solution"] is None
    patterns = client.call("UnifiedMemoryReasoningAgent", "list_error_patterns")["patterns"]
    assert "net" in [p["error_type"] for p in patterns]


def test_legacy_and_native_share_twins(hub, client):
    client.call("UnifiedMemoryReasoningAgent", "update_twin", {"user_id": "cy", "twin_data": {"x": 1}})
    assert send(hub, {"action": "get_twin", "user_id": "cy"}) == {"status": "ok", "twin": {"x": 1}}


@pytest.fixture(scope="module")
def no_search_client(tmp_path_factory):
    with HubProcess("memory_hub", tmp_path_factory.mktemp("umra-nosearch"),
                    config={"search": {"enabled": False}}) as running, running.client() as native:
        yield native


def test_embedding_route_with_search(client):
    client.call("MemoryOrchestratorService", "add_memory",
                {"content": "My house keys hang on the hook by the front door"})
    client.call("MemoryOrchestratorService", "add_memory", {"content": "Quarterly tax forms are due in April"})
    found = client.route("GET", "/embedding/where did I leave my keys", {"k": 2, "mode": "vector"})
    assert found["results"][0]["memory"]["content"].startswith("My house keys")
    packed = client.call("UnifiedMemoryReasoningAgent", "get_context", {"query": "keys", "token_budget": 50})
    assert packed["memories"] and packed["tokens"] <= 50


def test_embedding_route_without_search(no_search_client):
    client = no_search_client
    with pytest.raises(Unavailable):
        client.route("GET", "/embedding/where are my keys", {"k": "3", "mode": "vector"})
    with pytest.raises(Unavailable):
        client.call("UnifiedMemoryReasoningAgent", "semantic_search", {"query": "keys", "k": 3})
    with pytest.raises(Unavailable):
        client.call("UnifiedMemoryReasoningAgent", "get_context", {"query": "keys", "token_budget": 100})


def test_search_bad_input(client):
    with pytest.raises(BadRequest) as err:
        client.route("GET", "/embedding/%20%20")
    assert "query" in err.value.message
    with pytest.raises(BadRequest) as err:
        client.call("UnifiedMemoryReasoningAgent", "semantic_search", {"query": "x", "mode": "psychic"})
    assert "mode" in err.value.message
    with pytest.raises(BadRequest) as err:
        client.call("UnifiedMemoryReasoningAgent", "semantic_search", {"query": "x", "k": "lots"})
    assert "k" in err.value.message
    with pytest.raises(BadRequest) as err:
        client.call("UnifiedMemoryReasoningAgent", "get_context", {"query": "x", "token_budget": "many"})
    assert "token_budget" in err.value.message


@pytest.mark.parametrize("args, field", [({"twin_data": "flat"}, "twin_data"), ({"twin_data": {}}, "twin_data"),
                                         ({"user_id": 3, "twin_data": {"a": 1}}, "user_id")])
def test_native_bad_request_names_the_field(client, args, field):
    with pytest.raises(BadRequest) as err:
        client.call("UnifiedMemoryReasoningAgent", "update_twin", args)
    assert field in err.value.message
