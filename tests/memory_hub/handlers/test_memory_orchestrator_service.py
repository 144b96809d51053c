"""MemoryOrchestratorService against a real migrated SQLite and a real redis-server (no hub process).

The memory domain (tiers, access counts, versioned Redis copy, trees, relationships, groups, batches,
limits, events), every legacy action with its legacy reply and error messages, and the native actions.
The lifecycle task has its own module (``test_memory_orchestrator_service_lifecycle.py``).
"""
from __future__ import annotations

import uuid

import pytest
from sqlalchemy import func, select

from agents.memory_hub.handlers.memory_client import MemoryClient
from agents.memory_hub.handlers.memory_orchestrator_service import MemoryOrchestratorService
from agents.memory_hub.handlers.session_memory_agent import SessionMemoryAgent
from agents.memory_hub.hub import HANDLER_CLASSES
from agents.memory_hub.stores.sql_models import Memory, MemoryGroupMapping, MemoryRelationship
from bus.errors import BadRequest, Conflict, NotFound, TooLarge
from bus.handler import CallContext
from schemas.memory_hub import memory_orchestrator_service as schema


@pytest.fixture
def make(compose_hub):
    def make(sql_store, redis_store=None, **sections) -> MemoryOrchestratorService:
        return compose_hub(sql_store, redis_store, **sections).handler(MemoryOrchestratorService)
    return make


@pytest.fixture
def mos(make, sql_store, redis_store) -> MemoryOrchestratorService:
    return make(sql_store, redis_store)


def legacy(mos: MemoryOrchestratorService, action: str, **data) -> dict:
    return mos.handle_legacy({"action": action, "data": data}, 7140)


def native(mos: MemoryOrchestratorService, action: str, **args):
    spec, fn = mos.action_table()[action]
    return fn(spec.schema.validate(args), CallContext(agent=mos.name, action=action))


def add(mos, content="tea at noon", **fields) -> str:
    reply = legacy(mos, "add_memory", content=content, **fields)
    assert reply["status"] == "success", reply
    return reply["memory_id"]


def count_rows(sql_store, model=Memory) -> int:
    with sql_store.session() as s:
        return s.execute(select(func.count()).select_from(model)).scalar_one()


# ------------------------------------------------------------------------------------------- add / get

def test_add_memory_legacy_defaults_and_event(mos):
    memory_id = add(mos, "Ana likes green tea", memory_type="preference", created_by="MemoryClient",
                    tags=["tea"], metadata={"source": "chat"})
    assert memory_id.startswith("mem-") and uuid.UUID(memory_id[4:]).version == 4
    memory = legacy(mos, "get_memory", memory_id=memory_id)["memory"]
    assert memory["memory_tier"] == "short" and memory["importance"] == 1.0       # legacy add_memory defaults
    assert memory["memory_type"] == "preference" and memory["tags"] == ["tea"]
    assert memory["metadata"] == {"source": "chat"}                               # created_by is not a field
    for key in ("memory_id", "content", "memory_type", "memory_tier", "importance", "access_count",
                "last_accessed_at", "created_at", "expires_at", "metadata", "tags", "relationships", "parent_id"):
        assert key in memory
    assert ("memory.added", {"memory_id": memory_id, "memory_type": "preference", "namespace": "default",
                             "op": "add"}) in mos.events.events


def test_native_add_defaults_to_importance_half_and_refuses_existing_ids(mos):
    memory_id = native(mos, "add_memory", content="x", memory_id="mine-1")["memory_id"]
    assert memory_id == "mine-1"
    assert native(mos, "get_memory", memory_id="mine-1")["importance"] == 0.5
    with pytest.raises(Conflict):
        native(mos, "add_memory", content="y", memory_id="mine-1")


def test_legacy_add_with_an_existing_id_replaces_the_memory(mos):
    add(mos, "first", memory_id="fixed")
    add(mos, "second", memory_id="fixed", memory_tier="long")
    memory = legacy(mos, "get_memory", memory_id="fixed")["memory"]
    assert memory["content"] == "second" and memory["memory_tier"] == "long"


def test_get_memory_counts_accesses(mos):
    memory_id = add(mos)
    first = legacy(mos, "get_memory", memory_id=memory_id)["memory"]
    second = legacy(mos, "get_memory", memory_id=memory_id)["memory"]
    assert (first["access_count"], second["access_count"]) == (1, 2)
    assert second["last_accessed_at"] > first["last_accessed_at"]
    assert native(mos, "get_memory", memory_id=memory_id, touch=False)["access_count"] == 2


def test_redis_copy_is_legacy_shaped_and_never_stale(make, mos, redis_store, sql_store, tmp_path):
    memory_id = add(mos, "original")
    first = native(mos, "get_memory", memory_id=memory_id, touch=False)
    cached = mos.memories.cache.get(memory_id)
    assert cached == first and cached["content"] == "original" and 0 < redis_store.mem.ttl(memory_id) <= 3600
    hits = mos.memories.cache.hits
    assert native(mos, "get_memory", memory_id=memory_id, touch=False) == first
    assert mos.memories.cache.hits == hits + 1
    assert legacy(mos, "get_memory", memory_id=memory_id)["memory"]["access_count"] == first["access_count"] + 1
    assert mos.memories.cache.get(memory_id) is None                  # counting an access is a write
    other_hub = make(sql_store, redis_store)
    legacy(other_hub, "update_memory", memory_id=memory_id, update_data={"content": "changed"})
    assert native(mos, "get_memory", memory_id=memory_id, touch=False)["content"] == "changed"
    assert mos.memories.cache.get(memory_id)["content"] == "changed"


def test_reads_and_writes_work_while_redis_is_down(make, tmp_path, sql_store, redis_controller):
    from agents.memory_hub.stores.redis_store import RedisStore

    redis = RedisStore(redis_controller.url)
    mos = make(sql_store, redis)
    memory_id = add(mos, "before")
    legacy(mos, "get_memory", memory_id=memory_id)
    redis_controller.kill()
    assert legacy(mos, "update_memory", memory_id=memory_id, update_data={"content": "during"})["status"] == "success"
    other = add(mos, "added while redis is down")
    assert legacy(mos, "get_memory", memory_id=memory_id)["memory"]["content"] == "during"
    assert legacy(mos, "get_memory", memory_id=other)["memory"]["content"] == "added while redis is down"
    health = mos.legacy_health(7141)
    assert health["status"] == "degraded" and health["db_connected"] and not health["redis_connected"]
    redis_controller.restart()
    mos.memories.cache._down_until = 0.0                        # skip the back-off pause
    assert legacy(mos, "get_memory", memory_id=memory_id)["memory"]["content"] == "during"
    assert native(mos, "get_memory", memory_id=memory_id, touch=False)["content"] == "during"
    assert mos.memories.cache.get(memory_id)["content"] == "during"
    redis.close()


# ------------------------------------------------------------------------------------------- update / delete

def test_update_memory_sets_known_fields_only(mos):
    memory_id = add(mos, "old")
    reply = legacy(mos, "update_memory", memory_id=memory_id,
                   update_data={"content": "new", "importance": 0.3, "tags": ["x"], "memory_id": "other", "bogus": 1})
    assert reply == {"status": "success"}
    memory = native(mos, "get_memory", memory_id=memory_id)
    assert (memory["content"], memory["importance"], memory["tags"]) == ("new", 0.3, ["x"])
    assert legacy(mos, "get_memory", memory_id="other")["status"] == "error"


@pytest.mark.parametrize("update_data, message", [
    ({"importance": "high"}, "importance must be a number"),
    ({"memory_tier": "forever"}, "memory_tier must be one of short, medium, long"),
    ({"tags": "x"}, "tags must be a list of at most 100 strings"),
    ({"metadata": []}, "metadata must be an object"),
    ({"parent_id": "nobody"}, "Parent memory nobody not found."),
])
def test_update_memory_bad_fields(mos, update_data, message):
    memory_id = add(mos)
    assert legacy(mos, "update_memory", memory_id=memory_id, update_data=update_data) == \
        {"status": "error", "message": message}


def test_delete_cascade_and_not(mos, sql_store):
    root = add(mos, "root")
    child = add(mos, "child", parent_id=root)
    grandchild = add(mos, "grandchild", parent_id=child)
    other = add(mos, "other")
    legacy(mos, "add_relationship", source_id=other, target_id=child, relationship_type="mentions")
    group = legacy(mos, "create_context_group", name="g")["group_id"]
    legacy(mos, "add_to_group", memory_id=grandchild, group_id=group)

    assert legacy(mos, "delete_memory", memory_id=child, cascade=False) == \
        {"status": "success", "message": f"Memory {child} deleted successfully."}
    assert legacy(mos, "get_memory", memory_id=grandchild)["memory"]["parent_id"] is None
    assert count_rows(sql_store, MemoryRelationship) == 0

    child2 = add(mos, "child2", parent_id=root)
    add(mos, "grandchild2", parent_id=child2)
    deleted = native(mos, "delete_memory", memory_id=root, cascade=True)["deleted"]
    assert len(deleted) == 3 and deleted[0] == root
    assert count_rows(sql_store) == 2          # other, grandchild
    assert legacy(mos, "delete_memory", memory_id=root) == \
        {"status": "error", "message": f"Memory with ID {root} not found."}
    legacy(mos, "delete_memory", memory_id=grandchild)
    assert count_rows(sql_store, MemoryGroupMapping) == 0


def test_reinforce_caps_importance_at_one(mos):
    memory_id = add(mos, importance=0.5)
    assert legacy(mos, "reinforce_memory", memory_id=memory_id, reinforcement_factor=1.5) == \
        {"status": "success", "new_importance": 0.75}
    assert legacy(mos, "reinforce_memory", memory_id=memory_id)["new_importance"] == pytest.approx(0.9)
    assert legacy(mos, "reinforce_memory", memory_id=memory_id)["new_importance"] == 1.0


# ------------------------------------------------------------------------------------------- trees, links, groups

def test_get_children_sorted_and_limited(mos):
    parent = add(mos, "parent")
    kids = [add(mos, f"kid {i}", parent_id=parent, importance=0.1 * (i + 1)) for i in range(4)]
    children = legacy(mos, "get_children", parent_id=parent)["children"]
    assert [c["memory_id"] for c in children] == kids
    reply = legacy(mos, "get_children", parent_id=parent, limit=2, sort_field="importance", sort_order="desc")
    assert [c["memory_id"] for c in reply["children"]] == [kids[3], kids[2]]
    assert legacy(mos, "get_children", parent_id="nobody") == {"status": "success", "children": [], "results": []}


def test_relationships_legacy_shape_and_reweighting(mos):
    a, b, c = add(mos, "a"), add(mos, "b", memory_tier="long", importance=0.4), add(mos, "c")
    assert legacy(mos, "add_relationship", source_id=a, target_id=b, relationship_type="supports",
                  strength=0.5) == {"status": "success"}
    legacy(mos, "add_relationship", source_id=a, target_id=b, relationship_type="supports", strength=0.9)
    legacy(mos, "add_relationship", source_id=a, target_id=c, relationship_type="contradicts")
    related = legacy(mos, "get_related", memory_id=a)["related_memories"]
    assert [(r["relationship"]["type"], r["relationship"]["strength"]) for r in related] == \
        [("supports", 0.9), ("contradicts", 1.0)]
    assert related[0]["memory"] == {"memory_id": b, "content": "b", "memory_type": "general",
                                    "memory_tier": "long", "importance": 0.4}
    assert set(related[0]["relationship"]) == {"type", "strength", "created_at"}
    only = legacy(mos, "get_related", memory_id=a, relationship_type="contradicts")["related_memories"]
    assert [r["memory"]["memory_id"] for r in only] == [c]
    assert legacy(mos, "add_relationship", source_id=a, target_id="ghost", relationship_type="x") == \
        {"status": "error", "message": "Memory with ID ghost not found."}


def test_context_groups(mos):
    first, second = add(mos, "one"), add(mos, "two")
    reply = legacy(mos, "create_context_group", name="trip", description="July")
    group = reply["group_id"]
    assert reply["status"] == "success" and group.startswith("group-")
    assert legacy(mos, "add_to_group", memory_id=second, group_id=group) == {"status": "success"}
    assert legacy(mos, "add_to_group", memory_id=first, group_id=group) == {"status": "success"}
    assert legacy(mos, "add_to_group", memory_id=first, group_id=group) == {"status": "success"}   # idempotent
    listed = legacy(mos, "get_memories_by_group", group_id=group)
    assert listed["status"] == "success" and listed["count"] == 2
    assert [m["memory_id"] for m in listed["memories"]] == [second, first]
    assert legacy(mos, "get_memories_by_group", group_id=7) == \
        {"status": "error", "message": "Context group 7 not found."}
    assert legacy(mos, "add_to_group", memory_id="ghost", group_id=group) == \
        {"status": "error", "message": "Memory with ID ghost not found."}


# ------------------------------------------------------------------------------------------- batches

def test_batch_add_is_all_or_nothing(mos, sql_store):
    reply = legacy(mos, "batch_add_memories", memories=[{"content": "ok"}, {"content": 5}, {"content": "ok too"}])
    assert reply == {"status": "error",
                     "message": "Batch operation failed: memories[1].content: content must be a string"}
    assert count_rows(sql_store) == 0
    reply = legacy(mos, "batch_add_memories", memories=[{"content": "parent", "memory_id": "p"},
                                                        {"content": "child", "parent_id": "p"}])
    assert reply == {"status": "success", "message": "Added 2 memories", "memory_ids": ["p", reply["memory_ids"][1]]}
    assert native(mos, "get_memory", memory_id="p")["importance"] == 0.5        # MemoryEntry default in batches
    assert legacy(mos, "get_children", parent_id="p")["children"][0]["content"] == "child"


def test_batch_add_rolls_back_when_the_database_refuses_an_item(mos, sql_store):
    add(mos, "exists", memory_id="taken")
    reply = legacy(mos, "batch_add_memories", memories=[{"content": "fresh"},
                                                        {"content": "orphan", "parent_id": "missing"}])
    assert reply["status"] == "error" and "Parent memory missing not found." in reply["message"]
    assert count_rows(sql_store) == 1
    with pytest.raises(Conflict):
        native(mos, "batch_add_memories", memories=[{"content": "fresh"}, {"content": "dup", "memory_id": "taken"}])
    assert count_rows(sql_store) == 1


def test_batch_get_counts_accesses_and_skips_missing(mos):
    a, b = add(mos, "a"), add(mos, "b")
    reply = legacy(mos, "batch_get_memories", memory_ids=[b, "ghost", a])
    assert reply["status"] == "success" and reply["count"] == 2
    assert [m["memory_id"] for m in reply["memories"]] == [b, a]
    assert all(m["access_count"] == 1 for m in reply["memories"])
    assert native(mos, "batch_get_memories", memory_ids=[a, "ghost"])["missing"] == ["ghost"]


def test_batch_limits(make, tmp_path, sql_store):
    mos = make(sql_store, memory_orchestrator={"max_batch": 2})
    assert legacy(mos, "batch_add_memories", memories=[{"content": "x"}] * 3)["message"] == \
        "Batch operation failed: memories: 3 items, over the batch limit of 2"
    with pytest.raises(TooLarge):
        native(mos, "batch_get_memories", memory_ids=["a", "b", "c"])


# ------------------------------------------------------------------------------------------- search

def test_search_memory_like_filters_and_order(mos):
    session = add(mos, "session")
    low = add(mos, "green tea, low", importance=0.2)
    high = add(mos, "GREEN TEA, high", importance=0.9, memory_type="preference")
    kid = add(mos, "green tea in the session", parent_id=session, importance=0.5)
    add(mos, "100% sure_thing")
    reply = legacy(mos, "search_memory", query="green tea", limit=10)
    assert reply["status"] == "success" and reply["count"] == 3
    assert [r["memory_id"] for r in reply["results"]] == [high, kid, low]
    assert [r["memory_id"] for r in legacy(mos, "search_memory", query="tea", memory_type="preference")["results"]] \
        == [high]
    assert [r["memory_id"] for r in legacy(mos, "search_memory", query="tea", parent_id=session)["results"]] == [kid]
    assert legacy(mos, "search_memory", query="%", limit=10)["count"] == 1      # wildcards are literal
    assert legacy(mos, "search_memory", query="e_t")["count"] == 1


def test_semantic_search_without_engine_falls_back_to_text(mos):
    memory_id = add(mos, "the spare key is in the cupboard")
    reply = legacy(mos, "semantic_search", query="spare key", k=3)
    assert reply["status"] == "success"
    assert reply["message"] == "Semantic search not fully implemented, falling back to text search"
    assert [r["memory_id"] for r in reply["results"]] == [memory_id]
    assert native(mos, "semantic_search", query="spare key", filters={"memory_type": "general"})["mode"] == "text"
    assert legacy(mos, "semantic_search", query="key", filters={"colour": "red"})["status"] == "error"


# ------------------------------------------------------------------------------------------- bad input, limits

@pytest.mark.parametrize("action, data, message", [
    ("get_memory", {}, "memory_id is required."),
    ("get_memory", {"memory_id": 42}, "memory_id must be a string."),
    ("get_memory", {"memory_id": "ghost"}, "Memory with ID ghost not found."),
    ("get_children", {}, "parent_id is required."),
    ("get_children", {"parent_id": "p", "limit": "ten"}, "limit must be a positive integer."),
    ("get_children", {"parent_id": "p", "sort_field": "content"},
     "sort_field must be one of created_at, updated_at, importance, last_accessed_at, access_count"),
    ("add_relationship", {"source_id": "a"}, "source_id, target_id, and relationship_type are required."),
    ("add_relationship", {"source_id": "a", "target_id": 2, "relationship_type": "x"},
     "source_id, target_id, and relationship_type must be strings."),
    ("get_related", {}, "memory_id is required."),
    ("search_memory", {}, "query is required."),
    ("search_memory", {"query": "x", "limit": -1}, "limit must be a positive integer."),
    ("semantic_search", {"k": 3}, "query is required."),
    ("update_memory", {}, "memory_id is required."),
    ("update_memory", {"memory_id": "ghost", "update_data": {}}, "Memory with ID ghost not found."),
    ("update_memory", {"memory_id": "x", "update_data": "content"}, "update_data must be an object."),
    ("delete_memory", {}, "memory_id is required."),
    ("delete_memory", {"memory_id": "x", "cascade": "yes"}, "cascade must be a boolean."),
    ("reinforce_memory", {}, "memory_id is required."),
    ("reinforce_memory", {"memory_id": "x", "reinforcement_factor": "2"}, "reinforcement_factor must be a number."),
    ("create_context_group", {}, "name is required."),
    ("add_to_group", {"memory_id": "x"}, "memory_id and group_id are required."),
    ("add_to_group", {"memory_id": 1, "group_id": 1}, "memory_id must be a string."),
    ("get_memories_by_group", {}, "group_id is required."),
    ("batch_add_memories", {}, "No memories provided."),
    ("batch_add_memories", {"memories": {"content": "x"}}, "memories must be a list."),
    ("batch_get_memories", {"memory_ids": []}, "No memory_ids provided."),
    ("batch_get_memories", {"memory_ids": [1]}, "memory_ids must be a list of strings."),
    ("add_memory", {}, "Invalid memory format: content is required"),
    ("add_memory", {"content": ["x"]}, "Invalid memory format: content must be a string"),
    ("add_memory", {"content": "x", "importance": "high"}, "Invalid memory format: importance must be a number"),
    ("add_memory", {"content": "x", "importance": 3}, "Invalid memory format: importance must be between 0.0 and 1.0"),
    ("add_memory", {"content": "x", "memory_tier": "eternal"},
     "Invalid memory format: memory_tier must be one of short, medium, long"),
    ("add_memory", {"content": "x", "parent_id": "ghost"}, "Invalid memory format: Parent memory ghost not found."),
])
def test_bad_legacy_input_gets_the_legacy_error_reply(mos, action, data, message):
    assert mos.handle_legacy({"action": action, "data": data}, 7140) == {"status": "error", "message": message}


def test_envelope_errors(mos):
    assert mos.handle_legacy({"action": "dance"}, 7140) == {"status": "error", "message": "Unknown action: dance"}
    assert mos.handle_legacy({"data": {}}, 7140) == {"status": "error", "message": "Unknown action: None"}
    assert mos.handle_legacy(["add_memory"], 7140) == {"status": "error", "message": "Invalid request format"}
    assert mos.handle_legacy({"action": "get_memory", "data": "m"}, 7140) == \
        {"status": "error", "message": "Invalid request format: data must be an object."}


def test_oversized_content_is_refused_on_both_wires(make, tmp_path, sql_store):
    mos = make(sql_store, memory_orchestrator={"max_content_bytes": 100})
    reply = legacy(mos, "add_memory", content="é" * 51)
    assert reply == {"status": "error",
                     "message": "Invalid memory format: content is 102 bytes, over the 100-byte limit"}
    with pytest.raises(TooLarge) as err:
        native(mos, "add_memory", content="x" * 101)
    assert err.value.details == {"field": "content"}
    memory_id = native(mos, "add_memory", content="x" * 100)["memory_id"]
    with pytest.raises(TooLarge):
        native(mos, "update_memory", memory_id=memory_id, update_data={"content": "y" * 101})


@pytest.mark.parametrize("action, args, field", [
    ("add_memory", {}, "content"),
    ("add_memory", {"content": 7}, "content"),
    ("add_memory", {"content": "x", "memory_tier": "eternal"}, "memory_tier"),
    ("add_memory", {"content": "x", "importance": 2}, "importance"),
    ("add_memory", {"content": "x", "tags": [1]}, "tags[0]"),
    ("get_memory", {"memory_id": 3}, "memory_id"),
    ("get_children", {"parent_id": "p", "sort_order": "up"}, "sort_order"),
    ("add_relationship", {"source_id": "a", "target_id": "b"}, "relationship_type"),
    ("update_memory", {"memory_id": "m"}, "update_data"),
    ("batch_get_memories", {"memory_ids": ["a", 2]}, "memory_ids[1]"),
    ("add_to_group", {"memory_id": "m", "group_id": 1.5}, "group_id"),
])
def test_native_bad_request_names_the_field(action, args, field):
    spec = getattr(schema, action.upper())
    with pytest.raises(BadRequest) as err:
        spec.validate(args)
    assert err.value.details["field"] == field


def test_native_actions_round_trip(mos):
    memory_id = native(mos, "add_memory", content="native", tags=["n"], namespace="home")["memory_id"]
    assert native(mos, "update_memory", memory_id=memory_id, update_data={"importance": 0.7})["importance"] == 0.7
    assert native(mos, "reinforce_memory", memory_id=memory_id, reinforcement_factor=2.0) == \
        {"memory_id": memory_id, "new_importance": 1.0}
    child = native(mos, "add_memory", content="kid", parent_id=memory_id)["memory_id"]
    assert [c["memory_id"] for c in native(mos, "get_children", parent_id=memory_id)["children"]] == [child]
    assert native(mos, "add_relationship", source_id=child, target_id=memory_id, relationship_type="part_of")[
        "strength"] == 1.0
    assert native(mos, "get_related", memory_id=child)["related_memories"][0]["memory"]["memory_id"] == memory_id
    assert native(mos, "search_memory", query="nat", filters={"namespace": "home"})["count"] == 1
    group = native(mos, "create_context_group", name="g")["group_id"]
    assert native(mos, "add_to_group", memory_id=child, group_id=group)["added"] is True
    assert native(mos, "get_memories_by_group", group_id=group)["count"] == 1
    ids = native(mos, "batch_add_memories", memories=[{"content": "b1"}, {"content": "b2"}])["memory_ids"]
    assert native(mos, "batch_get_memories", memory_ids=ids)["count"] == 2
    session = native(mos, "create_session", user_id="ana")
    assert session["user_id"] == "ana" and session["session_id"].startswith("session-")
    assert legacy(mos, "create_session", user_id="bo", session_type="task", created_by="MemoryClient")["status"] == \
        "success"
    with pytest.raises(NotFound):
        native(mos, "delete_memory", memory_id="ghost")


def test_health_replies(mos):
    health = legacy(mos, "health")
    assert health == mos.legacy_health(7140) | {"timestamp": health["timestamp"], "uptime": health["uptime"],
                                                "active_threads": health["active_threads"]}
    assert health["db_connected"] and health["redis_connected"]
    assert health["error_bus_ready"] is False and health["status"] == "degraded"      # NullPublisher: no PUB socket
    for key in ("ready", "initialized", "message", "timestamp", "uptime", "active_threads"):
        assert key in health
    assert mos.handle_legacy({"action": "ping"}, 7140)["message"] == "MemoryOrchestratorService is healthy"
    probe = legacy(mos, "health_check")       # SystemHealthManager's probe: "success" only when healthy
    assert probe["status"] == "degraded" and probe["health"] == "degraded" and probe["db_connected"]


def test_handlers_share_the_hubs_domain_instances(compose_hub, sql_store):
    parts = compose_hub(sql_store)
    mos, client, sessions = (parts.handler(MemoryOrchestratorService), parts.handler(MemoryClient),
                             parts.handler(SessionMemoryAgent))
    assert mos.memories is client.legacy.memories is sessions.sessions.memories is parts.memories
    assert mos.sessions is sessions.sessions is parts.sessions
    assert [type(h) for h in parts.handlers] == list(HANDLER_CLASSES)


# ------------------------------------------------------------------------------- validated once, at each edge

def test_each_edge_refuses_a_bad_memory_in_its_own_words(mos, sql_store):
    """Native: the schema (bad_request naming the field); legacy: the legacy adapter's text. Nothing written."""
    with pytest.raises(BadRequest) as err:
        native(mos, "add_memory", content="x", memory_tier="eternal")
    assert err.value.details == {"field": "memory_tier"}
    assert legacy(mos, "add_memory", content="x", memory_tier="eternal") == \
        {"status": "error", "message": "Invalid memory format: memory_tier must be one of short, medium, long"}
    with pytest.raises(BadRequest) as err:
        native(mos, "add_memory", content="x", expires_at=float("nan"))
    assert err.value.details == {"field": "expires_at"}
    assert count_rows(sql_store) == 0


def test_native_checks_what_no_schema_describes(make, sql_store):
    mos = make(sql_store, memory_orchestrator={"max_metadata_bytes": 20})
    with pytest.raises(TooLarge) as err:
        native(mos, "add_memory", content="x", metadata={"note": "x" * 20})
    assert err.value.details == {"field": "metadata"}
    memory_id = native(mos, "add_memory", content="x")["memory_id"]
    with pytest.raises(BadRequest) as err:
        native(mos, "update_memory", memory_id=memory_id, update_data={"memory_tier": "eternal"})
    assert err.value.details == {"field": "memory_tier"}
    with pytest.raises(BadRequest) as err:
        native(mos, "batch_add_memories", memories=[{"content": "ok"}, {"content": 5}])
    assert (err.value.message, err.value.details) == \
        ("memories[1].content: content must be a string", {"field": "memories[1].content"})
    assert count_rows(sql_store) == 1


def test_legacy_replace_writes_the_memory_entry_defaults(mos):
    """A legacy add over an existing id is a whole new MemoryEntry: fields not given take their defaults."""
    add(mos, "first", memory_id="fixed", memory_type="preference", tags=["t"], importance=0.2, namespace="home")
    add(mos, "second", memory_id="fixed")
    memory = native(mos, "get_memory", memory_id="fixed", touch=False)
    assert (memory["memory_type"], memory["tags"], memory["importance"], memory["namespace"]) == \
        ("general", [], 1.0, "default")


def test_batch_read_limit_counts_distinct_ids_on_both_wires(make, sql_store):
    mos = make(sql_store, memory_orchestrator={"max_batch": 2})
    assert legacy(mos, "batch_get_memories", memory_ids=["a", "b", "c"]) == \
        {"status": "error", "message": "memory_ids: 3 items, over the batch limit of 2"}
    assert legacy(mos, "batch_get_memories", memory_ids=["a", "b", "a"])["count"] == 0
    with pytest.raises(TooLarge) as err:
        native(mos, "batch_get_memories", memory_ids=["a", "b", "c"])
    assert err.value.details == {"field": "memory_ids"}
    assert native(mos, "batch_get_memories", memory_ids=["a", "b", "a"])["missing"] == ["a", "b"]
