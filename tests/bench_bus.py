"""Bus benchmark: native round trips/s (sequential REQ, pipelined DEALER) next to a raw pyzmq ROUTER echo
measured in the same run. Run: ``python -m tests.bench_bus`` (part of ``make bench``).
"""
from __future__ import annotations

import argparse
import multiprocessing
import tempfile
import time
from pathlib import Path

import msgpack
import zmq

from tests.support.hubproc import HubProcess, free_offset, _port_free


def raw_echo_server(port: int, ready) -> None:
    ctx = zmq.Context()
    sock = ctx.socket(zmq.ROUTER)
    sock.bind(f"tcp://127.0.0.1:{port}")
    ready.set()
    while True:
        frames = sock.recv_multipart()
        if frames[-1] == b"STOP":
            break
        sock.send_multipart(frames)
    sock.close()
    ctx.term()


def sequential(endpoint: str, payload: bytes, n: int) -> float:
    sock = zmq.Context.instance().socket(zmq.REQ)
    sock.connect(endpoint)
    started = time.perf_counter()
    for _ in range(n):
        sock.send(payload)
        sock.recv()
    elapsed = time.perf_counter() - started
    sock.close(linger=0)
    return n / elapsed


def pipelined(endpoint: str, payload: bytes, n: int, window: int = 500) -> float:
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.setsockopt(zmq.SNDHWM, 0)
    sock.setsockopt(zmq.RCVHWM, 0)
    sock.connect(endpoint)
    sent = received = 0
    started = time.perf_counter()
    while received < n:
        while sent < n and sent - received < window:
            sock.send_multipart([b"", payload])
            sent += 1
        sock.recv_multipart()
        received += 1
    elapsed = time.perf_counter() - started
    sock.close(linger=0)
    return n / elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sequential", type=int, default=5000)
    parser.add_argument("--pipelined", type=int, default=30000)
    args = parser.parse_args()
    port = next(p for p in range(39000, 39999) if _port_free(p))
    ready = multiprocessing.Event()
    server = multiprocessing.Process(target=raw_echo_server, args=(port, ready), daemon=True)
    server.start()
    ready.wait(10)
    raw_endpoint = f"tcp://127.0.0.1:{port}"
    ping = msgpack.packb({"v": 1, "id": 1, "agent": "hub", "action": "ping"})
    raw_seq = sequential(raw_endpoint, ping, args.sequential)
    raw_pipe = pipelined(raw_endpoint, ping, args.pipelined)
    with tempfile.TemporaryDirectory() as tmp, \
            HubProcess("echo_hub", Path(tmp), module="tests.bus.echo_hub", offset=free_offset(),
                       config={"hub": {"queue_limit": 5000}}) as hub:
            token = hub.token()
            echo = msgpack.packb({"v": 1, "id": 1, "agent": "EchoAgent", "action": "echo", "args": {"word": "x"},
                                  "token": token})
            hub_seq = sequential(hub.endpoint, ping, args.sequential)
            hub_pipe = pipelined(hub.endpoint, ping, args.pipelined)
            pool_seq = sequential(hub.endpoint, echo, args.sequential)
            pool_pipe = pipelined(hub.endpoint, echo, args.pipelined)
    stop = zmq.Context.instance().socket(zmq.DEALER)
    stop.connect(raw_endpoint)
    stop.send_multipart([b"", b"STOP"])
    server.join(5)
    print("## Bus: native round trips (msgpack, loopback, one client)")
    print(f"{'what':52} {'req/s':>10} {'baseline':>10} {'ratio':>7}")
    rows = [
        ("raw pyzmq ROUTER echo, sequential REQ (baseline)", raw_seq, raw_seq),
        ("raw pyzmq ROUTER echo, pipelined DEALER (baseline)", raw_pipe, raw_pipe),
        ("hub ping (inline), sequential REQ", hub_seq, raw_seq),
        ("hub ping (inline), pipelined DEALER", hub_pipe, raw_pipe),
        ("EchoAgent.echo (worker pool + JWT), sequential REQ", pool_seq, raw_seq),
        ("EchoAgent.echo (worker pool + JWT), pipelined DEALER", pool_pipe, raw_pipe),
    ]
    for name, value, base in rows:
        print(f"{name:52} {value:10.0f} {base:10.0f} {value / base:7.2f}")
    print(f"goal: pipelined native >= 50% of the raw echo: {'met' if hub_pipe >= 0.5 * raw_pipe else 'NOT met'}")


if __name__ == "__main__":
    main()
