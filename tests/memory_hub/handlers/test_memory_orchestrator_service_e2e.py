"""MemoryOrchestratorService end to end: MemoryHub started as a process, driven on 7140 by a REQ client sending
exactly the JSON MemoryClient sent (legacy-protocol.md §1.1), on its health ports, and on the native port;
events on the PUB port; bad and oversized input on both wires.
"""
from __future__ import annotations

import time

import msgpack
import pytest
import zmq

from bus.errors import BadRequest, Conflict, NotFound, TooLarge, UnknownAction
from tests.support.hubproc import HubProcess

MAIN = 7140
AGENT = "MemoryOrchestratorService"


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    config = {"memory_orchestrator": {"max_content_bytes": 4096}}
    with HubProcess("memory_hub", tmp_path_factory.mktemp("mos-e2e"), config=config) as running:
        yield running


def send(hub, action: str, data: dict | None = None) -> dict:
    """What MemoryClient._send_request put on the wire: {"action": A, "data": {...}}."""
    return hub.legacy_request(MAIN, {"action": action, "data": data if data is not None else {}})


def add_memory(hub, content: str, **extra) -> str:
    data = {"content": content, "memory_type": "general", "memory_tier": "short", "importance": 0.5,
            "created_by": "GoalManager", **extra}
    reply = send(hub, "add_memory", data)
    assert reply["status"] == "success" and set(reply) == {"status", "memory_id"}
    return reply["memory_id"]


# ------------------------------------------------------------------------------------------- legacy port

def test_every_legacy_action_as_memory_client_sends_it(hub):
    parent = add_memory(hub, "trip planning", metadata={"trip": "July"}, tags=["trip"])
    child = add_memory(hub, "book the train to the mountains", parent_id=parent)
    other = add_memory(hub, "pack hiking boots", parent_id=parent)

    got = send(hub, "get_memory", {"memory_id": child})
    assert got["status"] == "success" and got["memory"]["content"] == "book the train to the mountains"
    assert got["memory"]["access_count"] == 1 and got["memory"]["parent_id"] == parent

    children = send(hub, "get_children", {"parent_id": parent, "limit": 50, "sort_field": "created_at",
                                          "sort_order": "desc"})
    assert children["status"] == "success" and [c["memory_id"] for c in children["children"]] == [other, child]

    assert send(hub, "add_relationship", {"source_id": child, "target_id": other, "relationship_type": "before",
                                          "strength": 0.8}) == {"status": "success"}
    related = send(hub, "get_related", {"memory_id": child, "relationship_type": "before"})
    assert related["status"] == "success"
    assert related["related_memories"][0]["memory"]["memory_id"] == other
    assert related["related_memories"][0]["relationship"]["strength"] == 0.8

    found = send(hub, "search_memory", {"query": "mountains", "limit": 10, "memory_type": "general",
                                        "parent_id": parent})
    assert found["status"] == "success" and found["count"] == 1 and found["results"][0]["memory_id"] == child
    semantic = send(hub, "semantic_search", {"query": "hiking", "k": 5, "filters": {"parent_id": parent}})
    # semantic: the hiking memory first; the mountain trip may follow (related meaning), nothing outside the filter
    assert semantic["status"] == "success" and semantic["results"][0]["memory_id"] == other
    assert {r["memory_id"] for r in semantic["results"]} <= {other, child}
    assert "message" in semantic

    assert send(hub, "update_memory", {"memory_id": child, "update_data": {"importance": 0.2}}) == \
        {"status": "success"}
    assert send(hub, "reinforce_memory", {"memory_id": child, "reinforcement_factor": 2.0}) == \
        {"status": "success", "new_importance": 0.4}

    group = send(hub, "create_context_group", {"name": "trip", "description": "summer"})
    assert group["status"] == "success"
    assert send(hub, "add_to_group", {"memory_id": child, "group_id": group["group_id"]}) == {"status": "success"}
    by_group = send(hub, "get_memories_by_group", {"group_id": group["group_id"]})
    assert by_group["status"] == "success" and [m["memory_id"] for m in by_group["memories"]] == [child]

    batch = send(hub, "batch_add_memories", {"memories": [{"content": "b1"}, {"content": "b2", "tags": ["x"]}]})
    assert batch["status"] == "success" and batch["message"] == "Added 2 memories" and len(batch["memory_ids"]) == 2
    fetched = send(hub, "batch_get_memories", {"memory_ids": batch["memory_ids"] + ["mem-missing"]})
    assert fetched["status"] == "success" and fetched["count"] == 2

    session = send(hub, "create_session", {"user_id": "ana", "session_type": "conversation",
                                           "created_by": "SessionMemoryAgent", "metadata": {"lang": "en"}})
    assert session["status"] == "success" and session["session_id"].startswith("session-")

    assert send(hub, "delete_memory", {"memory_id": parent, "cascade": True}) == \
        {"status": "success", "message": f"Memory {parent} deleted successfully."}
    assert send(hub, "get_memory", {"memory_id": child}) == \
        {"status": "error", "message": f"Memory with ID {child} not found."}


def test_goal_manager_reads_children_from_results(hub):
    """GoalManager / MainPC ContextManager read `results` of get_children; legacy MOS sent `children` only."""
    parent = add_memory(hub, "goal: learn Tagalog")
    tasks = [add_memory(hub, f"task {n}", parent_id=parent) for n in range(3)]
    reply = send(hub, "get_children", {"parent_id": parent, "limit": 100, "sort_field": "created_at",
                                       "sort_order": "asc"})
    assert reply["status"] == "success" and set(reply) == {"status", "children", "results"}
    assert [m["memory_id"] for m in reply["results"]] == tasks and reply["results"] == reply["children"]


def test_system_health_manager_probe_answers_success(hub):
    """SystemHealthManager sends {"action":"health_check","data":{}} to 7140 and requires status "success"."""
    reply = send(hub, "health_check", {})
    assert reply["status"] == "success" and reply["health"] == "ok"
    assert reply["db_connected"] and reply["redis_connected"] and reply["error_bus_ready"]
    assert hub.legacy_request(MAIN, {"action": "ping"})["status"] == "ok"      # BaseAgent's ping keeps "ok"


def test_health_on_the_main_and_health_ports(hub):
    for port in (7141, 8140):
        for request in ({"action": "health_check"}, "not even json-object", {}):
            reply = hub.legacy_request(port, request)
            assert reply["status"] == "ok" and reply["db_connected"] and reply["redis_connected"]
            assert reply["error_bus_ready"] is True and reply["message"] == "MemoryOrchestratorService is healthy"
    for action in ("ping", "health", "health_check"):
        assert hub.legacy_request(MAIN, {"action": action})["db_connected"] is True


@pytest.mark.parametrize("request_, reply", [
    ({"action": "get_memory", "data": {}}, {"status": "error", "message": "memory_id is required."}),
    ({"action": "get_memory", "data": {"memory_id": 7}}, {"status": "error", "message": "memory_id must be a string."}),
    ({"action": "add_memory", "data": {"content": 5}},
     {"status": "error", "message": "Invalid memory format: content must be a string"}),
    ({"action": "batch_add_memories", "data": {"memories": []}},
     {"status": "error", "message": "No memories provided."}),
    ({"action": "teleport", "data": {}}, {"status": "error", "message": "Unknown action: teleport"}),
    ({"action": "get_memory", "data": "mem-1"},
     {"status": "error", "message": "Invalid request format: data must be an object."}),
])
def test_bad_legacy_input(hub, request_, reply):
    assert hub.legacy_request(MAIN, request_) == reply


def test_undecodable_legacy_input_gets_the_base_agent_reply(hub):
    assert hub.legacy_request(MAIN, None, raw=b"{not json") == {"status": "error", "error": "Invalid JSON request"}


def test_oversized_content_on_both_wires(hub, client):
    reply = send(hub, "add_memory", {"content": "x" * 4097})
    assert reply == {"status": "error", "message": "Invalid memory format: content is 4097 bytes, over the "
                                                   "4096-byte limit"}
    with pytest.raises(TooLarge) as err:
        client.call(AGENT, "add_memory", {"content": "x" * 4097})
    assert err.value.details == {"field": "content"}
    assert client.call(AGENT, "add_memory", {"content": "x" * 4096})["memory_id"]


# ------------------------------------------------------------------------------------------- native port

def test_native_actions(client):
    call = lambda action, **args: client.call(AGENT, action, args)   # noqa: E731
    root = call("add_memory", content="native root", namespace="home", tags=["n"])["memory_id"]
    kid = call("add_memory", content="native kid", parent_id=root, memory_tier="medium", importance=0.3)["memory_id"]
    assert call("get_memory", memory_id=kid)["access_count"] == 1
    assert [c["memory_id"] for c in call("get_children", parent_id=root)["children"]] == [kid]
    assert call("add_relationship", source_id=kid, target_id=root, relationship_type="part_of")["strength"] == 1.0
    assert call("get_related", memory_id=kid)["related_memories"][0]["memory"]["memory_id"] == root
    assert call("search_memory", query="native", filters={"namespace": "home"})["count"] == 1
    assert call("semantic_search", query="native kid", k=3)["results"][0]["memory_id"] == kid
    assert call("update_memory", memory_id=kid, update_data={"tags": ["t"]})["tags"] == ["t"]
    assert call("reinforce_memory", memory_id=kid, reinforcement_factor=2.0)["new_importance"] == 0.6
    group = call("create_context_group", name="native")["group_id"]
    assert call("add_to_group", memory_id=kid, group_id=group)["added"] is True
    assert call("get_memories_by_group", group_id=group)["count"] == 1
    ids = call("batch_add_memories", memories=[{"content": "n1"}, {"content": "n2"}])["memory_ids"]
    assert call("batch_get_memories", memory_ids=ids + ["nope"])["missing"] == ["nope"]
    assert call("create_session", user_id="bo")["user_id"] == "bo"
    assert call("run_lifecycle")["processed"] >= 5
    assert call("delete_memory", memory_id=root, cascade=True)["deleted"] == [root, kid]
    with pytest.raises(NotFound):
        call("get_memory", memory_id=root)
    with pytest.raises(Conflict):
        call("add_memory", content="dup", memory_id=ids[0])


@pytest.mark.parametrize("action, args, field", [
    ("add_memory", {}, "content"),
    ("add_memory", {"content": ["x"]}, "content"),
    ("add_memory", {"content": "x", "importance": "high"}, "importance"),
    ("get_memory", {}, "memory_id"),
    ("update_memory", {"memory_id": "m", "update_data": []}, "update_data"),
    ("delete_memory", {"memory_id": "m", "cascade": "yes"}, "cascade"),
    ("add_memory", {"content": "x", "colour": "red"}, "colour"),
    ("add_memory", {"content": "x", "dedupe": "yes"}, "dedupe"),
])
def test_native_bad_request_names_the_field(client, action, args, field):
    with pytest.raises(BadRequest) as err:
        client.call(AGENT, action, args)
    assert err.value.details["field"] == field


def test_native_add_with_dedupe_returns_the_existing_memory_legacy_adds_a_row(hub, client):
    fact = "The boiler service code is 5512."
    first = client.call(AGENT, "add_memory", {"content": fact, "namespace": "dedupe-test"})["memory_id"]
    again = client.call(AGENT, "add_memory", {"content": fact, "namespace": "dedupe-test", "dedupe": True,
                                              "importance": 0.9})
    assert again["duplicate"] is True and again["memory_id"] == first
    assert again["memory"]["content"] == fact and again["memory"]["importance"] == 0.5   # nothing rewritten
    elsewhere = client.call(AGENT, "add_memory", {"content": fact, "namespace": "other-ns", "dedupe": True})
    assert elsewhere["duplicate"] is False and elsewhere["memory_id"] != first
    assert client.call(AGENT, "add_memory", {"content": fact + " ", "namespace": "dedupe-test",
                                             "dedupe": True})["duplicate"] is False
    plain = client.call(AGENT, "add_memory", {"content": fact, "namespace": "dedupe-test"})
    assert plain == {"memory_id": plain["memory_id"]} and plain["memory_id"] != first
    legacy_ids = {add_memory(hub, "Legacy writers always get a new row.") for _ in range(2)}
    assert len(legacy_ids) == 2


def test_native_json_encoding_and_unknown_action(hub):
    with hub.client(encoding="json") as json_client:
        memory_id = json_client.call(AGENT, "add_memory", {"content": "json client"})["memory_id"]
        assert json_client.call(AGENT, "get_memory", {"memory_id": memory_id})["content"] == "json client"
        with pytest.raises(UnknownAction):
            json_client.call(AGENT, "teleport", {})


def test_memory_added_events_reach_a_subscriber(hub):
    sock = zmq.Context.instance().socket(zmq.SUB)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.SUBSCRIBE, b"memory.added")
    sock.setsockopt(zmq.RCVTIMEO, 200)
    sock.connect(hub.events_endpoint)
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:                 # until the subscription is live (slow joiner)
            memory_id = add_memory(hub, "event me", memory_type="general", namespace="events")
            try:
                while True:
                    topic, payload = sock.recv_multipart()
                    event = msgpack.unpackb(payload)
                    if event.get("memory_id") == memory_id:
                        assert topic == b"memory.added"
                        assert event["memory_type"] == "general" and event["namespace"] == "events"
                        assert event["source"] and event["ts"] > 0
                        return
            except zmq.Again:
                continue
        pytest.fail("no memory.added event reached the subscriber")
    finally:
        sock.close()


# ------------------------------------------------------------------------------------------- idempotent writes

def test_add_memory_retried_with_an_idempotency_key_writes_once(hub, client):
    args = {"content": "retried after a timeout", "memory_type": "idem-test", "idempotency_key": "mos-retry-1"}
    first = client.call(AGENT, "add_memory", args)
    again = client.request({"agent": AGENT, "action": "add_memory", "args": args})
    assert again["ok"] and again["replayed"] is True and again["result"] == first
    found = client.call(AGENT, "search_memory", {"query": "retried after a timeout", "memory_type": "idem-test"})
    assert [m["memory_id"] for m in found["results"]] == [first["memory_id"]]


def test_http_route_body_carries_the_idempotency_key(hub):
    import json as json_module
    import urllib.request

    def post() -> dict:
        body = json_module.dumps({"text": "only once, please", "idempotency_key": "http-retry-1"}).encode()
        request = urllib.request.Request(f"{hub.http_url}/context/idem-http", data=body, method="POST",
                                         headers={"Authorization": f"Bearer {hub.token()}",
                                                  "Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=30) as resp:
            return json_module.loads(resp.read())

    assert post() == post()
    with hub.client() as native:
        items = native.route("GET", "/context/idem-http")["items"]
    assert [item["text"] for item in items] == ["only once, please"]
