"""Native port: round trips over REQ and DEALER, msgpack and JSON, route form, and every bus error code."""
from __future__ import annotations

import json
import random
import time

import msgpack
import pytest
import zmq

from bus.errors import BadRequest, HubError, Unauthorized


def raw_req(endpoint: str, payload: bytes, timeout_ms: int = 10000) -> bytes:
    sock = zmq.Context.instance().socket(zmq.REQ)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.RCVTIMEO, timeout_ms)
    sock.connect(endpoint)
    try:
        sock.send(payload)
        return sock.recv()
    finally:
        sock.close()


def test_req_msgpack_round_trip_echoes_id(echo_hub):
    token = echo_hub.token()
    request = {"v": 1, "id": "abc", "agent": "EchoAgent", "action": "echo", "args": {"word": "hi", "n": 2},
               "token": token}
    reply = msgpack.unpackb(raw_req(echo_hub.endpoint, msgpack.packb(request)))
    assert reply == {"v": 1, "id": "abc", "ok": True, "result": {"word": "hihi", "extra": None,
                                                                  "caller": "test-admin"}}


def test_req_json_gets_json_reply(echo_hub):
    request = {"id": 7, "agent": "EchoAgent", "action": "echo", "args": {"word": "x"}, "token": echo_hub.token()}
    raw = raw_req(echo_hub.endpoint, json.dumps(request).encode())
    assert raw.startswith(b"{")
    assert json.loads(raw)["result"]["word"] == "x"


def test_dealer_pipelined_replies_all_arrive(echo_hub):
    with echo_hub.client() as client:
        sock = client._socket()
        for i in range(200):
            sock.send_multipart([b"", msgpack.packb({"id": i, "agent": "EchoAgent", "action": "echo",
                                                      "args": {"word": str(i)}, "token": client.token})])
        seen = {}
        for _ in range(200):
            reply = msgpack.unpackb(sock.recv_multipart()[-1])
            seen[reply["id"]] = reply["result"]["word"]
    assert seen == {i: str(i) for i in range(200)}


def test_dealer_without_delimiter_is_answered(echo_hub):
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(echo_hub.endpoint)
    sock.send(msgpack.packb({"id": 1, "agent": "hub", "action": "ping"}))
    assert sock.poll(10000)
    frames = sock.recv_multipart()
    sock.close()
    assert len(frames) == 1 and msgpack.unpackb(frames[0])["result"]["pong"] is True


def test_route_form(echo_hub):
    with echo_hub.client() as client:
        assert client.route("GET", "/echo/hello")["word"] == "hello"
        assert client.route("POST", "/echo", {"word": "ab", "n": 3})["word"] == "ababab"
        with pytest.raises(HubError) as err:
            client.route("GET", "/nowhere")
        assert err.value.code == "unknown_action"
        with pytest.raises(HubError) as err:
            client.route("DELETE", "/echo/x")
        assert err.value.code == "unknown_action"


@pytest.mark.parametrize("args, field", [({"word": 5}, "word"), ({}, "word"), ({"word": "a", "n": "3"}, "n"),
                                         ({"word": "a", "n": 99}, "n"), ({"word": "a", "bogus": 1}, "bogus"),
                                         ({"word": "a", "n": True}, "n")])
def test_wrong_types_are_bad_request_naming_the_field(echo_hub, args, field):
    with echo_hub.client() as client, pytest.raises(BadRequest) as err:
        client.call("EchoAgent", "echo", args)
    assert f"'{field}'" in err.value.message


@pytest.mark.parametrize("payload, expected", [
    (msgpack.packb([1, 2, 3]), "must be a map"),
    (msgpack.packb({"id": 1}), "missing field 'agent'"),
    (msgpack.packb({"id": 1, "agent": "hub", "action": "ping", "v": 2}), "unsupported protocol version"),
    (msgpack.packb({"id": 1, "agent": "hub", "action": "ping", "args": [1]}), "'args' must be a map"),
    (msgpack.packb({"id": 1, "agent": "hub", "action": "ping", "deadline_ms": -5}), "deadline_ms"),
    (msgpack.packb({"id": 1, "agent": "hub", "action": "ping", "surprise": 1}), "unknown envelope field"),
    (b"{not json", "undecodable json"),
])
def test_malformed_envelopes(echo_hub, payload, expected):
    reply_raw = raw_req(echo_hub.endpoint, payload)
    reply = json.loads(reply_raw) if reply_raw.startswith(b"{") else msgpack.unpackb(reply_raw)
    assert reply["ok"] is False and reply["error"]["code"] == "bad_request"
    assert expected in reply["error"]["message"]


def test_unknown_agent_and_action(echo_hub):
    with echo_hub.client() as client:
        for agent, action in (("Nobody", "x"), ("EchoAgent", "nothing")):
            with pytest.raises(HubError) as err:
                client.call(agent, action)
            assert err.value.code == "unknown_action"


@pytest.mark.parametrize("code", ["not_found", "conflict", "unavailable", "forbidden"])
def test_handler_typed_errors_map_to_codes(echo_hub, code):
    with echo_hub.client() as client, pytest.raises(HubError) as err:
        client.call("EchoAgent", "fail", {"code": code})
    assert err.value.code == code
    assert err.value.retryable == (code == "unavailable")


def test_untyped_exception_is_internal_without_details(echo_hub):
    with echo_hub.client() as client, pytest.raises(HubError) as err:
        client.call("EchoAgent", "fail", {"code": "boom"})
    assert err.value.code == "internal"
    assert "secret internal detail" not in err.value.message


def test_missing_and_bad_tokens_are_unauthorized(echo_hub):
    with echo_hub.client(token=None) as client:
        assert client.call("hub", "ping")["pong"] is True  # public
        assert client.call("hub", "health")["status"] == "ok"
        with pytest.raises(Unauthorized):
            client.call("EchoAgent", "echo", {"word": "x"})
    with echo_hub.client(token="not-a-jwt") as client, pytest.raises(Unauthorized):
        client.call("EchoAgent", "echo", {"word": "x"})


def test_scope_is_enforced(echo_hub):
    with echo_hub.client(token=echo_hub.token(scopes=("OtherAgent",))) as client, pytest.raises(HubError) as err:
        client.call("EchoAgent", "echo", {"word": "x"})
    assert err.value.code == "forbidden"


def test_deadline_gives_timeout_and_hub_keeps_serving(echo_hub):
    with echo_hub.client() as client:
        started = time.monotonic()
        with pytest.raises(HubError) as err:
            client.call("EchoAgent", "sleep", {"seconds": 2.0}, deadline_ms=200)
        assert err.value.code == "timeout" and err.value.retryable
        assert time.monotonic() - started < 1.9
        assert client.call("hub", "ping")["pong"]


def test_a_deadline_outlives_thousands_of_requests_answered_meanwhile(echo_hub):
    # the server drops answered requests' deadlines in bulk once they pile up: the pending one must survive it
    with echo_hub.client() as client:
        sock = client._socket()
        sock.send_multipart([b"", msgpack.packb({"id": "slow", "agent": "EchoAgent", "action": "sleep",
                                                  "args": {"seconds": 3.0}, "deadline_ms": 1500,
                                                  "token": client.token})])
        echo = msgpack.packb({"id": 1, "agent": "EchoAgent", "action": "echo", "args": {"word": "w"},
                              "token": client.token})
        for _ in range(3000):
            sock.send_multipart([b"", echo])
        replies = [msgpack.unpackb(sock.recv_multipart()[-1]) for _ in range(3001)]
        slow = [r for r in replies if r["id"] == "slow"]
        assert len(slow) == 1 and slow[0]["error"]["code"] == "timeout"
        assert sum(1 for r in replies if r["id"] == 1 and r["ok"]) == 3000


def test_queue_full_answers_busy_with_retry_after(tight_hub):
    # 2 workers, queue limit 6: 12 pipelined sleeps → at least 6 are refused at once with `busy`
    with tight_hub.client() as client:
        sock = client._socket()
        for i in range(12):
            sock.send_multipart([b"", msgpack.packb({"id": i, "agent": "EchoAgent", "action": "sleep",
                                                      "args": {"seconds": 0.3}, "token": client.token})])
        replies = [msgpack.unpackb(sock.recv_multipart()[-1]) for _ in range(12)]
    busy = [r for r in replies if not r["ok"]]
    assert len(busy) >= 6
    assert all(r["error"]["code"] == "busy" and r["error"]["retry_after_ms"] > 0 for r in busy)
    assert sorted(r["id"] for r in replies) == list(range(12))


def test_streaming_replies_share_the_id(echo_hub):
    with echo_hub.client() as client:
        items = list(client.stream("EchoAgent", "count", {"n": 5}))
    assert items == [0, 1, 2, 3, 4, {"done": 5}]


def test_64_mib_frame_is_too_large(echo_hub):
    payload = msgpack.packb({"id": 1, "agent": "EchoAgent", "action": "echo",
                             "args": {"word": "x" * (64 * 1024 * 1024)}})
    reply = msgpack.unpackb(raw_req(echo_hub.endpoint, payload, timeout_ms=60000))
    assert reply["error"]["code"] == "too_large"
    with echo_hub.client() as client:
        assert client.call("hub", "ping")["pong"]


def test_random_garbage_frames_each_get_bad_request(echo_hub):
    rng = random.Random(1234)
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(echo_hub.endpoint)
    sent = 0
    for _ in range(1000):
        blob = bytes(rng.getrandbits(8) for _ in range(rng.randrange(1, 200)))
        sock.send_multipart([b"", blob])
        sent += 1
    codes = []
    for _ in range(sent):
        assert sock.poll(20000), f"only {len(codes)} of {sent} answered"
        raw = sock.recv_multipart()[-1]
        reply = json.loads(raw) if raw.startswith(b"{") else msgpack.unpackb(raw, strict_map_key=False)
        codes.append(reply["error"]["code"] if not reply.get("ok") else "ok")
    sock.close()
    assert set(codes) <= {"bad_request", "unknown_action"} and codes.count("bad_request") >= 990
    with echo_hub.client() as client:
        assert client.call("hub", "ping")["pong"]


def test_hub_actions_table_and_version(echo_hub):
    with echo_hub.client() as client:
        table = client.call("hub", "actions")
        version = client.call("hub", "version")
    assert table["actions"]["EchoAgent"]["echo"]["schema"]["fields"]["word"]["required"] is True
    assert {"method": "GET", "path": "/echo/{word}", "agent": "EchoAgent", "action": "echo"} in table["routes"]
    assert version["hub"] == "EchoHub" and version["protocol"] == 1


# ------------------------------------------------------------------------------------------- issue 18, point 8

def test_unknown_agent_name_is_not_echoed_at_length(echo_hub):
    reply = msgpack.unpackb(raw_req(echo_hub.endpoint, msgpack.packb(
        {"agent": "A" * 1_000_000, "action": "x", "token": echo_hub.token()})))
    assert reply["error"]["code"] == "unknown_action" and len(reply["error"]["message"]) < 200
    reply = msgpack.unpackb(raw_req(echo_hub.endpoint, msgpack.packb(
        {"agent": "EchoAgent", "action": "B" * 1_000_000, "token": echo_hub.token()})))
    assert reply["error"]["code"] == "unknown_action" and len(reply["error"]["message"]) < 200


@pytest.mark.parametrize("depth", [100, 1000, 100_000])
def test_deeply_nested_args_are_bad_request_not_internal(echo_hub, depth):
    payload = (b'{"agent":"EchoAgent","action":"echo","token":"' + echo_hub.token().encode() +
               b'","args":{"word":"w","extra":' + b"[" * depth + b"]" * depth + b"}}")
    reply = json.loads(raw_req(echo_hub.endpoint, payload))
    assert reply["ok"] is False and reply["error"]["code"] == "bad_request"


@pytest.mark.parametrize("deadline", [2 ** 63, 10 ** 12, 0, -5])
def test_absurd_deadlines_are_bad_request(echo_hub, deadline):
    reply = msgpack.unpackb(raw_req(echo_hub.endpoint, msgpack.packb(
        {"agent": "EchoAgent", "action": "echo", "args": {"word": "w"}, "deadline_ms": deadline,
         "token": echo_hub.token()})))
    assert reply["error"]["code"] == "bad_request" and "deadline_ms" in reply["error"]["message"]


def test_a_defect_while_resolving_a_request_is_an_internal_error_and_the_hub_serves_on(echo_hub):
    with echo_hub.client() as client:
        with pytest.raises(HubError) as failed:
            client.call("EchoAgent", "broken", {})
        assert failed.value.code == "internal"
        assert client.call("EchoAgent", "echo", {"word": "still"})["word"] == "still"
