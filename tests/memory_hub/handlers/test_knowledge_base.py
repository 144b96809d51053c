"""KnowledgeBase against a real migrated SQLite and a real redis-server (no hub process): facts as memories,
topic lookup, search among facts, documents with a Redis db2 copy, legacy replies, native actions.
"""
from __future__ import annotations

import pytest

from agents.memory_hub.handlers.knowledge_base import KnowledgeBase
from bus.errors import BadRequest, NotFound, TooLarge
from bus.handler import CallContext
from schemas.memory_hub import knowledge_base as schema


@pytest.fixture
def make(compose_hub):
    def make(sql_store, redis_store=None, **sections) -> KnowledgeBase:
        return compose_hub(sql_store, redis_store, **sections).handler(KnowledgeBase)
    return make


@pytest.fixture
def kb(make, sql_store, redis_store) -> KnowledgeBase:
    return make(sql_store, redis_store)


def legacy(kb, action: str, **fields) -> dict:
    return kb.handle_legacy({"action": action, **fields}, 5715)


def native(kb, action: str, **args):
    spec, fn = kb.action_table()[action]
    return fn(spec.schema.validate(args), CallContext(agent=kb.name, action=action))


def test_add_fact_stores_a_knowledge_fact_memory(kb):
    reply = legacy(kb, "add_fact", topic="Paris", content="Paris is the capital of France.")
    assert reply["status"] == "success" and set(reply) == {"status", "memory_id"}
    fact = kb.knowledge.memories.get(reply["memory_id"], touch=False)
    assert (fact["memory_type"], fact["memory_tier"], fact["importance"]) == ("knowledge_fact", "long", 0.8)
    assert fact["metadata"] == {"topic": "Paris"} and fact["tags"] == ["paris"]
    assert ("memory.added", {"memory_id": reply["memory_id"], "memory_type": "knowledge_fact",
                             "namespace": "default", "op": "add"}) in kb.knowledge.memories.events.events


def test_get_fact_prefers_the_topic(kb):
    legacy(kb, "add_fact", topic="tea", content="Tea is mentioned with Paris here.")
    legacy(kb, "add_fact", topic="paris", content="paris, lower case topic")
    legacy(kb, "add_fact", topic="Paris", content="Paris is the capital of France.")
    assert legacy(kb, "get_fact", topic="Paris")["fact"]["content"] == "Paris is the capital of France."
    assert legacy(kb, "get_fact", topic="paris")["fact"]["content"] == "paris, lower case topic"
    assert legacy(kb, "get_fact", topic="PARIS")["fact"]["metadata"]["topic"] in ("Paris", "paris")
    assert legacy(kb, "get_fact", topic="mentioned")["fact"]["content"] == "Tea is mentioned with Paris here."
    assert legacy(kb, "get_fact", topic="Berlin") == {"status": "error", "message": "Fact not found"}
    kb.knowledge.memories.add({"content": "Berlin is in a plain memory"})
    assert legacy(kb, "get_fact", topic="Berlin") == {"status": "error", "message": "Fact not found"}


def test_update_fact_by_id_or_topic(kb):
    memory_id = legacy(kb, "add_fact", topic="Moon", content="The moon is made of cheese.")["memory_id"]
    assert legacy(kb, "update_fact", topic="Moon", content="The moon is rock.") == \
        {"status": "success", "message": "Fact updated successfully"}
    assert legacy(kb, "get_fact", topic="Moon")["fact"]["content"] == "The moon is rock."
    assert legacy(kb, "update_fact", memory_id=memory_id, content="The moon orbits Earth.")["status"] == "success"
    assert legacy(kb, "get_fact", topic="Moon")["fact"]["content"] == "The moon orbits Earth."
    assert legacy(kb, "update_fact", topic="Mars", content="red") == {"status": "error", "message": "Fact not found"}
    assert legacy(kb, "update_fact", memory_id="ghost", content="x") == \
        {"status": "error", "message": "Memory with ID ghost not found."}
    assert native(kb, "update_fact", topic="Moon", content="native")["memory_id"] == memory_id


def test_search_facts_returns_facts_only(kb):
    legacy(kb, "add_fact", topic="tea", content="Green tea has caffeine.")
    legacy(kb, "add_fact", topic="coffee", content="Coffee has more caffeine than tea.")
    kb.knowledge.memories.add({"content": "caffeine in a chat message", "memory_type": "interaction"})
    reply = legacy(kb, "search_facts", query="caffeine", limit=10)
    assert reply["status"] == "success" and len(reply["results"]) == 2
    assert {r["memory_type"] for r in reply["results"]} == {"knowledge_fact"}
    assert legacy(kb, "search_facts", query="caffeine", limit=1)["results"][0]["memory_type"] == "knowledge_fact"
    assert legacy(kb, "search_facts") == {"status": "error", "message": "query is required."}
    assert native(kb, "search_facts", query="tea")["count"] == 2


@pytest.mark.parametrize("request_, message", [
    ({"action": "add_fact", "topic": "x"}, "Missing topic or content"),
    ({"action": "add_fact", "content": "x"}, "Missing topic or content"),
    ({"action": "add_fact", "topic": 5, "content": "x"}, "topic must be a string"),
    ({"action": "add_fact", "topic": "t", "content": {"x": 1}}, "Invalid memory format: content must be a string"),
    ({"action": "update_fact", "memory_id": "m", "content": 7}, "Invalid memory format: content must be a string"),
    ({"action": "get_fact"}, "Missing topic"),
    ({"action": "get_fact", "topic": ["a"]}, "topic must be a string"),
    ({"action": "update_fact", "topic": "t"}, "Missing required parameters"),
    ({"action": "update_fact", "content": "c"}, "Missing required parameters"),
    ({"action": "search_facts", "query": "x", "limit": "ten"}, "limit must be an integer between 1 and 1000"),
    ({"action": "search_facts", "query": 3}, "query is required."),
    ({"action": "teach"}, "Unknown action: teach"),
])
def test_bad_legacy_input_gets_the_legacy_error_reply(kb, request_, message):
    assert kb.handle_legacy(request_, 5715) == {"status": "error", "message": message}


def test_health_forms_and_request_count(kb):
    assert legacy(kb, "health_check") == {"status": "success", "healthy": True}
    reply = legacy(kb, "ping")
    assert set(reply) == {"status", "service", "uptime_seconds", "request_count", "timestamp"}
    assert reply["status"] == "HEALTHY" and reply["service"] == "KnowledgeBase" and reply["request_count"] == 2
    assert isinstance(reply["timestamp"], float) and isinstance(reply["uptime_seconds"], int)
    assert kb.legacy_health(6715)["request_count"] == 2
    assert kb.handle_legacy([1], 5715) == {"status": "error", "message": "Invalid request format"}


def test_documents_crud_with_a_current_redis_copy(make, kb, redis_store, sql_store, tmp_path):
    doc = native(kb, "doc_put", doc_id="manual", content="v1", title="Manual", metadata={"lang": "en"})
    assert doc["created"] is True and doc["title"] == "Manual" and doc["namespace"] == "default"
    assert native(kb, "doc_get", doc_id="manual")["content"] == "v1"
    assert kb.knowledge.cache.get("manual")["content"] == "v1"                 # copied on the first read
    again = native(kb, "doc_put", doc_id="manual", content="v2")
    assert again["created"] is False and again["title"] == "Manual" and again["metadata"] == {"lang": "en"}
    assert kb.knowledge.cache.get("manual") is None                            # invalidated by the write
    assert native(kb, "doc_get", doc_id="manual")["content"] == "v2"
    other_hub = make(sql_store, redis_store)               # same SQL and Redis
    native(other_hub, "doc_put", doc_id="manual", content="v3")
    assert native(kb, "doc_get", doc_id="manual")["content"] == "v3"
    assert native(kb, "doc_delete", doc_id="manual") == {"doc_id": "manual", "deleted": True}
    assert kb.knowledge.cache.get("manual") is None
    with pytest.raises(NotFound):
        native(kb, "doc_get", doc_id="manual")
    with pytest.raises(NotFound):
        native(kb, "doc_delete", doc_id="manual")


def test_document_and_fact_limits(make, tmp_path, sql_store):
    kb = make(sql_store, knowledge_base={"max_doc_bytes": 8}, memory_orchestrator={"max_content_bytes": 8})
    with pytest.raises(TooLarge) as err:
        native(kb, "doc_put", doc_id="d", content="123456789")
    assert err.value.details == {"field": "content"}
    assert native(kb, "doc_put", doc_id="d", content="12345678")["created"] is True
    assert legacy(kb, "add_fact", topic="t", content="123456789") == \
        {"status": "error", "message": "Invalid memory format: content is 9 bytes, over the 8-byte limit"}
    with pytest.raises(TooLarge):
        native(kb, "add_fact", topic="t", content="123456789")


@pytest.mark.parametrize("spec, args, field", [
    (schema.ADD_FACT, {"content": "x"}, "topic"),
    (schema.ADD_FACT, {"topic": "t", "content": 1}, "content"),
    (schema.DOC_PUT, {"doc_id": "d"}, "content"),
    (schema.DOC_PUT, {"doc_id": "d", "content": "c", "metadata": "m"}, "metadata"),
    (schema.SEARCH_FACTS, {"query": "q", "limit": 0}, "limit"),
])
def test_native_bad_request_names_the_field(spec, args, field):
    with pytest.raises(BadRequest) as err:
        spec.validate(args)
    assert err.value.details["field"] == field


def test_native_update_needs_topic_or_id(kb):
    with pytest.raises(BadRequest) as err:
        native(kb, "update_fact", content="x")
    assert err.value.details == {"field": "topic"}
    fact_id = native(kb, "add_fact", topic="Sun", content="hot")["memory_id"]
    assert native(kb, "get_fact", topic="Sun")["memory_id"] == fact_id
