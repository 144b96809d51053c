"""The events port carries ids and topics, not memory content, unless configured (issue 18 point 7), and can
require CURVE like the native port."""
from __future__ import annotations

import time

import msgpack
import zmq

from bus.events import without_fields
from tests.support.hubproc import HubProcess

MEMORY_TEXT = "my bank pin is 4242 and the safe is behind the painting"


def test_without_fields_strips_nested_content():
    event = {"agent": "PCM", "text": "secret", "reason": "context",
             "memories": [{"memory_id": "m1", "content": "secret", "score": 0.9}]}
    assert without_fields(event, frozenset({"text", "content"})) == {
        "agent": "PCM", "reason": "context", "memories": [{"memory_id": "m1", "score": 0.9}], "redacted": True}
    assert without_fields({"memory_id": "m1"}, frozenset({"text"})) == {"memory_id": "m1"}


def subscriber(endpoint: str, prefix: bytes = b"", server_key: str | None = None) -> zmq.Socket:
    sock = zmq.Context.instance().socket(zmq.SUB)
    sock.setsockopt(zmq.LINGER, 0)
    if server_key:
        public, secret = zmq.curve_keypair()
        sock.curve_serverkey = server_key.encode()
        sock.curve_publickey, sock.curve_secretkey = public, secret
    sock.setsockopt(zmq.SUBSCRIBE, prefix)
    sock.connect(endpoint)
    return sock


def events_while_adding_context(hub: HubProcess, sock: zmq.Socket, seconds: float = 4.0) -> list[tuple[str, dict]]:
    seen: list[tuple[str, dict]] = []
    until = time.monotonic() + seconds
    while time.monotonic() < until:
        hub.legacy_request(7119, {"action": "add_context", "context": MEMORY_TEXT})
        while sock.poll(100, zmq.POLLIN):
            topic, payload = sock.recv_multipart()
            seen.append((topic.decode(), msgpack.unpackb(payload)))
        if seen:
            break
    return seen


def test_memory_content_is_not_published_by_default(tmp_path):
    with HubProcess("memory_hub", tmp_path, config={"search": {"enabled": False}}) as hub:
        sock = subscriber(hub.events_endpoint, b"context.")
        try:
            events = events_while_adding_context(hub, sock)
        finally:
            sock.close()
    assert events, "no event reached the subscriber"
    added = [fields for topic, fields in events if topic == "context.added"]
    assert added and all("text" not in f and f["redacted"] is True for f in added)
    assert all(MEMORY_TEXT not in repr(fields) for _, fields in events)


def test_events_port_can_require_curve(tmp_path):
    public, secret = (key.decode() for key in zmq.curve_keypair())
    config = {"search": {"enabled": False}, "events": {"curve": True},
              "curve": {"server_public_key": public, "server_secret_key": secret}}
    with HubProcess("memory_hub", tmp_path, config=config) as hub:
        plain = subscriber(hub.events_endpoint, b"context.")
        secured = subscriber(hub.events_endpoint, b"context.", server_key=public)
        try:
            assert events_while_adding_context(hub, secured)
            assert events_while_adding_context(hub, plain, seconds=1.5) == []
        finally:
            plain.close()
            secured.close()
