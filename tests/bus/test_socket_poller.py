"""SocketPoller: readiness of many ROUTER sockets through their ZMQ_FD, without losing a wake-up.

Real sockets on 127.0.0.1; each case is one of the ways libzmq's edge-triggered descriptor can hide a
waiting message (a socket read only in part, a signal taken by a send, a signal taken by someone else).
"""
from __future__ import annotations

import os
import time
from collections.abc import Iterator

import pytest
import zmq

from bus.socket_poller import SocketPoller


@pytest.fixture
def routers() -> Iterator[tuple[SocketPoller, list[zmq.Socket], list[zmq.Socket]]]:
    context = zmq.Context()
    poller = SocketPoller()
    servers, clients = [], []
    for _ in range(30):
        server = context.socket(zmq.ROUTER)
        port = server.bind_to_random_port("tcp://127.0.0.1")
        client = context.socket(zmq.DEALER)
        client.connect(f"tcp://127.0.0.1:{port}")
        poller.register_socket(server)
        servers.append(server)
        clients.append(client)
    yield poller, servers, clients
    for sock in servers + clients:
        sock.close(linger=0)
    context.term()


def wait_ready(poller: SocketPoller, timeout_s: float = 5.0) -> list[zmq.Socket]:
    until = time.monotonic() + timeout_s
    while time.monotonic() < until:
        ready, _ = poller.poll(100)
        if ready:
            return ready
    return []


def drain(poller: SocketPoller) -> None:
    """Register-time look-agains and idle scans answered: the poller has nothing to report."""
    for _ in range(3):
        ready, _ = poller.poll(0)
        assert ready == []


def test_reports_only_the_socket_with_a_message(routers):
    poller, servers, clients = routers
    drain(poller)
    clients[17].send_multipart([b"", b"hello"])
    assert wait_ready(poller) == [servers[17]]
    assert servers[17].recv_multipart(zmq.NOBLOCK)[-1] == b"hello"


def test_a_socket_read_in_part_is_reported_again_without_a_new_signal(routers):
    poller, servers, clients = routers
    drain(poller)
    for word in (b"one", b"two"):
        clients[3].send_multipart([b"", word])
    time.sleep(0.2)                                   # both are queued before the socket is looked at
    assert wait_ready(poller) == [servers[3]]
    assert servers[3].recv_multipart(zmq.NOBLOCK)[-1] == b"one"
    started = time.monotonic()
    ready, _ = poller.poll(5000)        # the second is still there: no signal will announce it
    assert ready == [servers[3]] and time.monotonic() - started < 1.0     # (not found by the idle scan)
    assert servers[3].recv_multipart(zmq.NOBLOCK)[-1] == b"two"


def test_a_message_arriving_while_a_reply_is_sent_is_not_missed(routers):
    poller, servers, clients = routers
    drain(poller)
    clients[5].send_multipart([b"", b"first"])
    assert wait_ready(poller) == [servers[5]]
    identity, _, _ = servers[5].recv_multipart(zmq.NOBLOCK)
    with pytest.raises(zmq.Again):
        servers[5].recv_multipart(zmq.NOBLOCK)
    assert poller.poll(0) == ([], set())              # nothing left to look at again
    clients[5].send_multipart([b"", b"second"])
    time.sleep(0.2)                                   # its signal is waiting when the reply is sent...
    servers[5].send_multipart([identity, b"", b"reply"])       # ...and the send processes it
    poller.sent_on(servers[5])
    started = time.monotonic()
    ready, _ = poller.poll(5000)
    assert ready == [servers[5]] and time.monotonic() - started < 1.0     # (not found by the idle scan)
    assert servers[5].recv_multipart(zmq.NOBLOCK)[-1] == b"second"


def test_a_signal_taken_elsewhere_costs_one_idle_timeout_at_most(routers):
    poller, servers, clients = routers
    drain(poller)
    clients[9].send_multipart([b"", b"hidden"])
    time.sleep(0.2)
    assert servers[9].getsockopt(zmq.EVENTS) & zmq.POLLIN     # someone else asks: the signal is consumed
    assert wait_ready(poller, timeout_s=1.0) == [servers[9]]


def test_plain_descriptors_are_reported_by_number(routers):
    poller, _, _ = routers
    drain(poller)
    read_end, write_end = os.pipe()
    try:
        poller.register_fd(read_end)
        assert poller.poll(0) == ([], set())
        os.write(write_end, b"x")
        assert poller.poll(1000) == ([], {read_end})
        poller.unregister_fd(read_end)
        assert poller.poll(0) == ([], set())
    finally:
        os.close(read_end)
        os.close(write_end)
