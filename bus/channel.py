"""The router's reply channel: any thread hands reply frames back; only the router thread sends them.

ZeroMQ sockets are not thread-safe, so worker threads, model threads and future callbacks never touch a
ROUTER socket. They ``put`` items (any object: the router decides what they mean) into this channel; the
router polls ``fileno()`` with its sockets and ``drain``s every item at once. A producer writes one wake-up
byte only when the channel is not already signalled, so a burst of replies costs one system call.
"""
from __future__ import annotations

import collections
import contextlib
import socket
import threading
from collections.abc import Iterable
from typing import Any


class ReplyChannel:
    def __init__(self) -> None:
        self._items: collections.deque[Any] = collections.deque()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._signalled = False
        self._lock = threading.Lock()
        self._closed = False

    def fileno(self) -> int:
        """Readable when items are waiting (register it with a ``zmq.Poller``)."""
        return self._wake_r.fileno()

    def put(self, item: Any) -> None:
        self._items.append(item)
        self._wake()

    def put_many(self, items: Iterable[Any]) -> None:
        self._items.extend(items)
        self._wake()

    def drain(self) -> list[Any]:
        """Every item put so far, in order (called by the router thread only)."""
        # Consume the wake-up bytes *before* clearing the flag: a producer that set the flag has sent (or
        # will send) a byte, so "signalled" never outlives its byte and no item is left without a wake-up.
        try:
            while self._wake_r.recv(4096):
                pass
        except (BlockingIOError, OSError):
            pass
        with self._lock:
            self._signalled = False
        items = []
        pop = self._items.popleft
        while self._items:
            items.append(pop())
        return items

    def close(self) -> None:
        self._closed = True
        self._wake_r.close()
        self._wake_w.close()

    def _wake(self) -> None:
        with self._lock:
            if self._signalled or self._closed:
                return
            self._signalled = True
        with contextlib.suppress(BlockingIOError, OSError):   # the buffer is full of wake-ups already, or closed
            self._wake_w.send(b"\0")
