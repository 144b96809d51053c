"""Waiting on many ZeroMQ sockets at a cost that does not grow with their number.

A hub binds one ROUTER per legacy port (about 30 on MemoryHub). ``zmq.Poller`` asks every socket for its
state before it waits and again after it wakes: measured here, 17 us per call over 30 sockets, and a
sequential request takes two waits (request in, Redis reply in), so the idle legacy ports cost more than
serving the read. ``SocketPoller`` waits with one ``poll(2)`` on each socket's ``ZMQ_FD`` instead (a
microsecond or two for 30 descriptors) and asks only the sockets that can have something: those whose
descriptor fired, and those it must look at again. (``poll``, not ``epoll``: a Redis connection that is
dropped and reconnected may get the same descriptor number back, which ``epoll`` would have forgotten.)

The rule behind it (libzmq's ``ZMQ_FD``): the descriptor signals that the socket has commands to process,
not that a message waits. Once a socket has unread messages it is not signalled again until they are read
to the end, and any send or receive on it may consume a signal that was meant for a new message. So a
socket is looked at again (``ZMQ_EVENTS``, without waiting) before every wait when it was reported ready
last time (its reader may have stopped before the end) or when it was sent on (``sent_on``). A wait that
times out with nothing ready looks at every socket, so a signal consumed in some other way (an option read
by a health check) delays a message by one idle timeout at most, never for good.

Plain descriptors (a pipe, a Redis connection) are reported as they are (level-triggered).
"""
from __future__ import annotations

import select
from typing import Any, cast

import zmq
from zmq.backend import Socket as _BaseSocket

_get_option = _BaseSocket.get       # the compiled method: the Python wrapper costs more than the call
_EVENTS = int(zmq.EVENTS)
_POLLIN = int(zmq.POLLIN)


def has_input(sock: zmq.Socket[Any]) -> bool:
    """A message waits on ``sock`` (``ZMQ_EVENTS``; processes its pending commands, so it may take its signal)."""
    return bool(cast(int, _get_option(sock, _EVENTS)) & _POLLIN)


class SocketPoller:
    """Poll ZeroMQ sockets and plain descriptors for input. One thread uses it (the router loop)."""

    def __init__(self) -> None:
        self._poll = select.poll()
        self._sockets: dict[int, zmq.Socket[Any]] = {}     # ZMQ_FD -> socket
        self._look_again: set[zmq.Socket[Any]] = set()

    def register_socket(self, sock: zmq.Socket[Any]) -> None:
        descriptor = cast(int, sock.getsockopt(zmq.FD))
        self._poll.register(descriptor, select.POLLIN)
        self._sockets[descriptor] = sock
        self._look_again.add(sock)

    def register_fd(self, descriptor: int) -> None:
        self._poll.register(descriptor, select.POLLIN)

    def unregister_fd(self, descriptor: int) -> None:
        self._poll.unregister(descriptor)

    def sent_on(self, sock: zmq.Socket[Any]) -> None:
        """``sock`` was sent on: look at it before the next wait (the send may have taken its signal)."""
        self._look_again.add(sock)

    def poll(self, timeout_ms: int) -> tuple[list[zmq.Socket[Any]], set[int]]:
        """The sockets with a message to read, and the plain descriptors that are readable."""
        ready = [sock for sock in self._look_again if has_input(sock)]
        self._look_again.clear()
        events = self._poll.poll(0 if ready else timeout_ms)
        if not events and not ready and timeout_ms > 0:
            ready = [sock for sock in self._sockets.values() if has_input(sock)]
        descriptors: set[int] = set()
        for descriptor, _ in events:
            sock = self._sockets.get(descriptor)
            if sock is None:
                descriptors.add(descriptor)
            elif sock not in ready and has_input(sock):
                ready.append(sock)
        self._look_again.update(ready)
        return ready, descriptors
