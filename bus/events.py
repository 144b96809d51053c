"""Event publishing on the hub's PUB socket (DESIGN.md §3.4).

Handlers get an ``EventPublisher`` and call ``publish(topic, fields)`` from any thread. In-process
``observers`` (e.g. a hub's context monitor; topics are the hubs' own) see every event too; they must be
cheap, and one that raises is logged and skipped. Messages are two
frames: the topic (utf-8) and a msgpack map with ``ts``, ``source`` and the fields. The publisher owns
its socket on a dedicated thread (ZeroMQ sockets are not thread-safe), fed by a bounded queue; when
subscribers are slow and the queue is full, the oldest events are dropped and counted, never blocking
a handler.

What goes on the wire is private by default (issue 18): the content fields the hub names
(``HubSpec.event_content_fields``: text, memory content, metadata...) are removed from every event before
it is sent (nested maps and lists too) and the event is marked ``redacted: true``; subscribers get ids,
topics and counts. ``events.include_content:
true`` sends them. In-process observers always see the full event. ``events.curve: true`` makes the PUB
socket a CURVE server with the hub's ``curve`` keys (and allowed client keys), like the native port.
"""
from __future__ import annotations

import contextlib
import queue
import threading
import time
from dataclasses import dataclass
from typing import Any
from collections.abc import Callable, Iterable

import msgpack
import zmq

from bus.log import get_logger

log = get_logger("bus.events")
Observer = Callable[[str, dict[str, Any]], None]     # (topic, fields) -> None


@dataclass(frozen=True)
class EventsSettings:
    """Section ``events``; which fields are content is the hub's to say (``HubSpec.event_content_fields``)."""

    include_content: bool = False     # send content fields to subscribers (trusted hosts only)
    curve: bool = False               # CURVE on the events port (needs curve.server_* keys)


class EventPublisher:
    """Thread-safe publisher. ``NullPublisher`` has the same interface for tests of pure logic."""

    def __init__(self, context: zmq.Context[Any], endpoint: str, source: str, queue_size: int = 10000,
                 on_publish: Callable[[str], None] | None = None, private_fields: Iterable[str] = (),
                 secure: Callable[[zmq.Socket[Any]], None] | None = None):
        self._source = source
        self._private = frozenset(private_fields)
        self._secure = secure
        self._queue: queue.Queue[tuple[str, dict[str, Any]]] = queue.Queue(maxsize=queue_size)
        self._context = context
        self._endpoint = endpoint
        self._stop = threading.Event()
        self._on_publish = on_publish
        self.dropped = 0
        self.observers: list[Observer] = []
        self._ready = threading.Event()
        self._bind_error: Exception | None = None
        self._thread = threading.Thread(target=self._run, name="events-pub", daemon=True)

    def start(self) -> None:
        self._thread.start()
        self._ready.wait(10)
        if self._bind_error:
            raise self._bind_error

    def publish(self, topic: str, fields: dict[str, Any] | None = None) -> None:
        payload = {"ts": time.time(), "source": self._source}
        payload.update(without_fields(fields or {}, self._private) if self._private else (fields or {}))
        try:
            self._queue.put_nowait((topic, payload))
        except queue.Full:
            with contextlib.suppress(queue.Empty):
                self._queue.get_nowait()
            self.dropped += 1
            self._queue.put_nowait((topic, payload))
        notify_observers(self.observers, topic, fields)

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(5)

    def _run(self) -> None:
        sock = self._context.socket(zmq.PUB)
        sock.setsockopt(zmq.LINGER, 500)
        sock.setsockopt(zmq.SNDHWM, 10000)
        try:
            if self._secure is not None:
                self._secure(sock)
            sock.bind(self._endpoint)
        except (zmq.ZMQError, ValueError) as exc:
            self._bind_error = exc
            self._ready.set()
            sock.close()
            return
        self._ready.set()
        while not self._stop.is_set() or not self._queue.empty():
            try:
                topic, payload = self._queue.get(timeout=0.2)
            except queue.Empty:
                continue
            sock.send_multipart([topic.encode(), msgpack.packb(payload, use_bin_type=True, default=str)])
            if self._on_publish:
                self._on_publish(topic)
        sock.close()


class NullPublisher:
    """Collects events in memory; for unit tests of handler logic and for hubs without a PUB socket."""

    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []
        self.observers: list[Observer] = []

    def publish(self, topic: str, fields: dict[str, Any] | None = None) -> None:
        self.events.append((topic, dict(fields or {})))
        notify_observers(self.observers, topic, fields)


def notify_observers(observers: list[Observer], topic: str, fields: dict[str, Any] | None) -> None:
    for observer in list(observers):
        try:
            observer(topic, dict(fields or {}))
        except Exception as exc:  # an observer's bug must not break the publisher's callers
            log.error("event_observer_failed", topic=topic, error=repr(exc))


def without_fields(fields: dict[str, Any], private: frozenset[str], depth: int = 0) -> dict[str, Any]:
    """``fields`` without the private names (in nested maps and lists too); ``redacted: True`` if any went."""
    removed = False

    def strip(value: Any, level: int) -> Any:
        nonlocal removed
        if level > 8:
            return None
        if isinstance(value, dict):
            kept = {}
            for key, item in value.items():
                if key in private:
                    removed = True
                    continue
                kept[key] = strip(item, level + 1)
            return kept
        if isinstance(value, (list, tuple)):
            return [strip(item, level + 1) for item in value]
        return value

    out: dict[str, Any] = strip(fields, depth)
    if removed:
        out["redacted"] = True
    return out
