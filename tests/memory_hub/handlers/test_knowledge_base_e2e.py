"""KnowledgeBase end to end: MemoryHub started as a process, driven on 5715 by a REQ client sending the flat
JSON of the intended protocol (legacy-protocol.md §1.3); health on 6715; native fact actions and the /doc routes.
"""
from __future__ import annotations

import pytest

from bus.errors import BadRequest, NotFound, TooLarge
from tests.support.hubproc import HubProcess

MAIN, HEALTH = 5715, 6715
AGENT = "KnowledgeBase"


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    config = {"knowledge_base": {"max_doc_bytes": 1024}}
    with HubProcess("memory_hub", tmp_path_factory.mktemp("kb-e2e"), config=config) as running:
        yield running


def send(hub, action: str, **fields) -> dict:
    return hub.legacy_request(MAIN, {"action": action, **fields})


def test_every_legacy_action(hub):
    added = send(hub, "add_fact", topic="Python", content="Python was created by Guido van Rossum.")
    assert added["status"] == "success" and set(added) == {"status", "memory_id"}
    send(hub, "add_fact", topic="Rust", content="Rust guarantees memory safety without a garbage collector.")
    fact = send(hub, "get_fact", topic="Python")
    assert fact["status"] == "success" and fact["fact"]["memory_id"] == added["memory_id"]
    assert fact["fact"]["metadata"] == {"topic": "Python"} and fact["fact"]["tags"] == ["python"]
    assert fact["fact"]["memory_type"] == "knowledge_fact" and fact["fact"]["importance"] == 0.8
    assert send(hub, "update_fact", topic="Python", content="Python 3 was released in 2008.") == \
        {"status": "success", "message": "Fact updated successfully"}
    assert send(hub, "update_fact", memory_id=added["memory_id"], content="Python is dynamically typed.") == \
        {"status": "success", "message": "Fact updated successfully"}
    assert send(hub, "get_fact", topic="Python")["fact"]["content"] == "Python is dynamically typed."
    found = send(hub, "search_facts", query="memory safety", limit=10)
    assert found["status"] == "success" and [r["content"] for r in found["results"]] == \
        ["Rust guarantees memory safety without a garbage collector."]
    assert send(hub, "health_check") == {"status": "success", "healthy": True}


def test_health(hub):
    for request in ({"action": "ping"}, "anything", {}):
        reply = hub.legacy_request(HEALTH, request)
        assert set(reply) == {"status", "service", "uptime_seconds", "request_count", "timestamp"}
        assert reply["status"] == "HEALTHY" and reply["service"] == "KnowledgeBase"
    assert send(hub, "health")["status"] == "HEALTHY"


@pytest.mark.parametrize("request_, message", [
    ({"action": "add_fact", "topic": "t"}, "Missing topic or content"),
    ({"action": "add_fact", "topic": ["t"], "content": "c"}, "topic must be a string"),
    ({"action": "get_fact"}, "Missing topic"),
    ({"action": "get_fact", "topic": "Atlantis"}, "Fact not found"),
    ({"action": "update_fact", "content": "c"}, "Missing required parameters"),
    ({"action": "search_facts"}, "query is required."),
    ({"action": "forget"}, "Unknown action: forget"),
])
def test_bad_legacy_input(hub, request_, message):
    assert hub.legacy_request(MAIN, request_) == {"status": "error", "message": message}


def test_native_facts(client):
    memory_id = client.call(AGENT, "add_fact", {"topic": "Tea", "content": "Green tea contains caffeine."})[
        "memory_id"]
    assert client.call(AGENT, "get_fact", {"topic": "tea"})["memory_id"] == memory_id
    assert client.call(AGENT, "update_fact", {"topic": "Tea", "content": "Tea is a drink."}) == \
        {"memory_id": memory_id}
    assert client.call(AGENT, "search_facts", {"query": "drink"})["count"] == 1
    with pytest.raises(NotFound):
        client.call(AGENT, "get_fact", {"topic": "Nothing here at all"})
    with pytest.raises(BadRequest) as err:
        client.call(AGENT, "add_fact", {"content": "no topic"})
    assert err.value.details["field"] == "topic"


def test_documents_by_route_and_action(client):
    created = client.route("PUT", "/doc/manual-1", {"content": "Press the red button.", "title": "Manual",
                                                    "metadata": {"lang": "en"}})
    assert created["created"] is True and created["doc_id"] == "manual-1"
    assert client.route("GET", "/doc/manual-1")["content"] == "Press the red button."
    updated = client.call(AGENT, "doc_put", {"doc_id": "manual-1", "content": "Press the green button."})
    assert updated["created"] is False and updated["title"] == "Manual" and updated["metadata"] == {"lang": "en"}
    assert client.call(AGENT, "doc_get", {"doc_id": "manual-1"})["content"] == "Press the green button."
    assert client.route("DELETE", "/doc/manual-1") == {"doc_id": "manual-1", "deleted": True}
    with pytest.raises(NotFound):
        client.route("GET", "/doc/manual-1")
    with pytest.raises(TooLarge):
        client.route("PUT", "/doc/big", {"content": "x" * 1025})
    with pytest.raises(BadRequest) as err:
        client.route("PUT", "/doc/nobody", {"title": "no content"})
    assert err.value.details["field"] == "content"
