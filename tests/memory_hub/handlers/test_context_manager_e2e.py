"""ContextManager end to end: MemoryHub as a process; legacy REQ/JSON clients on 7111/8111, native actions, the
/context/{context_id} route form, the context.added event on the PUB port, and persistence across a restart.
"""
from __future__ import annotations

import json
import urllib.request

import msgpack
import pytest
import zmq

from bus.errors import BadRequest, UnknownAction
from tests.support.hubproc import HubProcess

MAIN, HEALTH = 7111, 8111


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    with HubProcess("memory_hub", tmp_path_factory.mktemp("context-e2e")) as running:
        yield running


def send(hub: HubProcess, request) -> dict:
    return hub.legacy_request(MAIN, request)


def test_every_legacy_action_as_legacy_clients_send_it(hub):
    assert send(hub, {"action": "clear_context"}) == {"status": "success", "message": "Context cleared"}
    assert send(hub, {"action": "add_to_context", "text": "Tandaan mo: the meeting is at 3?", "speaker": "user",
                      "metadata": {"channel": "voice"}}) == {"status": "success", "message": "Added to context"}
    assert send(hub, {"action": "add_to_context", "text": "Okay, noted.", "speaker": "assistant"}) == \
        {"status": "success", "message": "Added to context"}
    reply = send(hub, {"action": "get_context"})
    assert reply["status"] == "success" and len(reply["context"]) == 2
    top = reply["context"][0]
    assert top == {"text": "Tandaan mo: the meeting is at 3?", "speaker": "user", "metadata": {"channel": "voice"},
                   "importance": pytest.approx(0.8), "timestamp": top["timestamp"]}
    assert send(hub, {"action": "get_context", "speaker": "assistant", "max_items": 5})["context"][0]["text"] == \
        "Okay, noted."
    assert send(hub, {"action": "get_context_text", "max_items": 1}) == \
        {"status": "success", "context_text": "[user]: Tandaan mo: the meeting is at 3?"}
    assert send(hub, {"action": "prune_context"}) == {"status": "success", "message": "Context pruned"}
    assert send(hub, {"action": "clear_context", "speaker": "assistant"}) == {"status": "success",
                                                                             "message": "Context cleared"}
    assert send(hub, {"action": "get_context", "speaker": "assistant"})["context"] == []
    assert len(send(hub, {"action": "get_context"})["context"]) == 2
    assert send(hub, {"action": "clear_context"}) == {"status": "success", "message": "Context cleared"}
    assert send(hub, {"action": "get_context"}) == {"status": "success", "context": []}
    assert send(hub, {"action": "whatever"}) == {"status": "error", "message": "Unknown action: whatever"}


@pytest.mark.parametrize("request_, message", [
    ({"action": "add_to_context"}, "Missing text parameter"),
    ({"action": "add_to_context", "text": ["a"]}, "Invalid text parameter"),
    ({"action": "add_to_context", "text": "x" * 30000}, "Invalid text parameter"),
    ({"action": "get_context", "max_items": "all"}, "Invalid max_items parameter"),
    ({"action": "clear_context", "speaker": 3}, "Invalid speaker parameter"),
])
def test_bad_legacy_input(hub, request_, message):
    assert send(hub, request_) == {"status": "error", "message": message}


def test_health_port_and_health_actions(hub):
    for reply in (hub.legacy_request(HEALTH, {"action": "health_check"}), hub.legacy_request(HEALTH, {"x": 1}),
                  send(hub, {"action": "health_check"})):
        assert reply["status"] == "ok" and reply["service"] == "ContextManager"
        assert reply["initialization_status"] == "complete"
        assert reply["port"] == MAIN and reply["health_port"] == HEALTH and "timestamp" in reply


def test_native_actions(client):
    added = client.call("ContextManager", "add", {"context_id": "car", "text": "I need fuel, please",
                                                 "speaker": "driver"})
    assert added["context_id"] == "car" and added["importance"] == pytest.approx(0.6)
    client.call("ContextManager", "add", {"context_id": "car", "text": "low", "importance": 0.1})
    got = client.call("ContextManager", "get_context", {"context_id": "car"})
    assert [i["text"] for i in got["items"]] == ["I need fuel, please", "low"] and got["window_size"] == 10
    assert client.call("ContextManager", "get_context_text", {"context_id": "car", "speaker": "driver"}) == \
        {"context_id": "car", "context_text": "[driver]: I need fuel, please"}
    assert client.call("ContextManager", "context_info", {"context_id": "car"})["speakers"] == ["driver"]
    assert client.call("ContextManager", "prune_context", {"context_id": "car"}) == {"context_id": "car", "pruned": 0}
    assert client.call("ContextManager", "clear_context", {"context_id": "car"}) == {"context_id": "car", "cleared": 2}


def test_native_contexts_are_separate_from_the_legacy_default(hub, client):
    client.call("ContextManager", "add", {"context_id": "kitchen", "text": "oven is on"})
    assert send(hub, {"action": "get_context"})["context"] == []
    client.call("ContextManager", "add", {"text": "default via native"})
    assert send(hub, {"action": "get_context"})["context"][0]["text"] == "default via native"
    send(hub, {"action": "clear_context"})


def test_route_form(client):
    added = client.route("POST", "/context/den", {"text": "remember the plants", "speaker": "ana"})
    assert added["context_id"] == "den" and added["importance"] == pytest.approx(0.7)
    got = client.route("GET", "/context/den")
    assert got["context_id"] == "den" and [i["text"] for i in got["items"]] == ["remember the plants"]
    client.route("POST", "/context/den", {"text": "second"})
    assert [i["text"] for i in client.route("GET", "/context/den", {"max_items": 1})["items"]] == \
        ["remember the plants"]
    assert client.route("DELETE", "/context/den") == {"context_id": "den", "cleared": 2}
    assert client.route("GET", "/context/den")["items"] == []
    with pytest.raises(UnknownAction):
        client.route("PATCH", "/context/den")


@pytest.mark.parametrize("args, field", [({}, "text"), ({"text": 5}, "text"), ({"text": "x", "importance": 3},
                                                                              "importance"),
                                         ({"text": "x", "speaker": ""}, "speaker"), ({"text": "x", "nope": 1}, "nope")])
def test_native_bad_request_names_the_field(client, args, field):
    with pytest.raises(BadRequest) as err:
        client.call("ContextManager", "add", args)
    assert field in err.value.message


def test_context_added_event_is_published(hub, client):
    sub = zmq.Context.instance().socket(zmq.SUB)
    sub.setsockopt(zmq.LINGER, 0)
    sub.setsockopt(zmq.SUBSCRIBE, b"context.added")
    sub.connect(hub.events_endpoint)
    try:
        received = None
        for attempt in range(40):                                  # PUB/SUB joins asynchronously
            send(hub, {"action": "add_to_context", "text": f"event probe {attempt}", "speaker": "probe"})
            if sub.poll(250):
                received = sub.recv_multipart()
                break
        assert received is not None
        topic, payload = received[0].decode(), msgpack.unpackb(received[1], raw=False)
        assert topic == "context.added"
        assert payload["context_id"] == "default" and payload["speaker"] == "probe"
        assert payload["source"] == "MemoryHub" and {"ts", "item_id", "importance", "timestamp"} <= set(payload)
        # ids only on the wire by default (events.include_content): no text, no metadata
        assert "text" not in payload and "metadata" not in payload and payload["redacted"] is True
    finally:
        sub.close()
        send(hub, {"action": "clear_context"})


def test_http_route_with_query_string(hub, client):
    client.route("POST", "/context/porch", {"text": "first"})
    client.route("POST", "/context/porch", {"text": "please water the plants"})
    req = urllib.request.Request(hub.http_url + "/context/porch?max_items=1",
                                 headers={"Authorization": f"Bearer {hub.token()}"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        body = json.loads(resp.read())
    assert "please water the plants" in json.dumps(body) and "first" not in json.dumps(body)


@pytest.mark.slow
def test_context_survives_a_hub_restart(tmp_path):
    with HubProcess("memory_hub", tmp_path) as hub:
        hub.legacy_request(MAIN, {"action": "add_to_context", "text": "remember the code 1234", "speaker": "ana"})
    with HubProcess("memory_hub", tmp_path) as hub:
        reply = hub.legacy_request(MAIN, {"action": "get_context", "speaker": "ana"})
        assert [i["text"] for i in reply["context"]] == ["remember the code 1234"]
