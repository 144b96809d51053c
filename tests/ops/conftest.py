"""Shared helpers of the operations tests: free ports, real ZeroMQ peers, hub processes."""
from __future__ import annotations

import json
import socket
from typing import Any

import pytest
import zmq


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def receive_json(sock: zmq.Socket, timeout_s: float) -> Any:
    if not sock.poll(int(timeout_s * 1000)):
        raise AssertionError(f"nothing received within {timeout_s}s")
    return json.loads(sock.recv().decode("utf-8"))


@pytest.fixture
def zmq_context():
    context = zmq.Context()
    yield context
    context.destroy(linger=0)


def fast_backoff(**overrides: Any) -> dict:
    backoff = {"initial_s": 0.05, "factor": 2.0, "max_s": 0.2, "max_attempts": 0}
    backoff.update(overrides)
    return backoff
