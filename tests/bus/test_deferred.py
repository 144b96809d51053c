"""Deferred replies: an action that returns a ``Future`` frees its worker at once; the bus answers (and
streams) when another thread completes it. A hub with ONE worker thread proves it: the parked call would
otherwise hold the only worker, and the `release` that completes it could never run.
"""
from __future__ import annotations

import msgpack
import pytest
import zmq

from tests.support.hubproc import HubProcess


@pytest.fixture(scope="module")
def one_worker_hub(tmp_path_factory):
    with HubProcess("echo_hub", tmp_path_factory.mktemp("one-worker"), module="tests.bus.echo_hub",
                    config={"hub": {"workers": 1}}) as hub:
        yield hub


def dealer(hub) -> zmq.Socket:
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.setsockopt(zmq.RCVTIMEO, 20000)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(hub.endpoint)
    return sock


def send(sock: zmq.Socket, hub, request_id: int, action: str, args: dict, stream: bool = False) -> None:
    request = {"v": 1, "id": request_id, "agent": "EchoAgent", "action": action, "args": args,
               "token": hub.token(), "stream": stream}
    sock.send_multipart([b"", msgpack.packb(request)])


def receive(sock: zmq.Socket) -> dict:
    return msgpack.unpackb(sock.recv_multipart()[-1])


def test_a_parked_call_does_not_hold_the_only_worker(one_worker_hub):
    sock = dealer(one_worker_hub)
    send(sock, one_worker_hub, 1, "parked", {})
    send(sock, one_worker_hub, 2, "parked", {})
    send(sock, one_worker_hub, 3, "echo", {"word": "still served"})
    first = receive(sock)
    assert first["id"] == 3 and first["result"]["word"] == "still served"
    send(sock, one_worker_hub, 4, "release", {})
    replies = {r["id"]: r for r in (receive(sock) for _ in range(3))}
    assert replies[4]["result"] == {"released": 2}
    assert replies[1]["result"] == replies[2]["result"] == {"released": True}
    sock.close()


def test_chunks_and_errors_from_another_thread(one_worker_hub):
    sock = dealer(one_worker_hub)
    send(sock, one_worker_hub, 1, "parked", {"chunks": 3}, stream=True)
    send(sock, one_worker_hub, 2, "release", {"fail": True})
    replies = [receive(sock) for _ in range(5)]
    assert [r["result"] for r in replies if r["id"] == 2] == [{"released": 1}]
    streamed = [r for r in replies if r["id"] == 1]
    assert [r["chunk"] for r in streamed[:3]] == ["chunk 0", "chunk 1", "chunk 2"]
    assert all(r["stream"] and not r["final"] for r in streamed[:3])
    final = streamed[3]
    assert final["final"] and not final["ok"] and final["error"]["code"] == "not_found"
    sock.close()
