"""In-process copies of Redis values, kept current by Redis itself (server-assisted client-side caching).

A sequential hub read served from Redis costs one ZeroMQ round trip, one Redis round trip and two passes of
the router loop. A ``NearCache`` lets a repeated read skip Redis: it holds the values that one
``RedisReader`` connection read, and that connection runs ``CLIENT TRACKING ON`` in RESP3, so Redis pushes an
``invalidate`` message on the same connection whenever any client (this hub, another replica, a legacy
agent writing Redis directly, an expiry, an eviction, ``FLUSHDB``) changes a key it read. The rules:

* **Only on a tracking connection.** Copies are kept only while the reader's connection confirmed tracking
  (``start``); when that connection fails or closes (``reset``) every copy is dropped, because the
  invalidations sent meanwhile are lost with it.
* **Pushes and replies share one stream**, so an invalidation is applied after the replies read before the
  change and before the replies read after it; the loop applies it before it reads the requests of the same
  pass (``bus.server`` polls watched sources first).
* **This hub's own writes drop synchronously** (``drop``, called by the writer before and after its Redis
  write, from any thread) and move the epoch: a reply whose read was sent before the drop is not kept
  (``put`` with the epoch seen at send time). So a client that got the acknowledgement of a write on this
  hub never reads the older value from here. A write on another replica reaches this cache with Redis's
  push (written by Redis before it answers that replica), not with the acknowledgement.
* **A lease on what Redis said**: a copy is served only while the reader got, within ``lease_s``, the reply
  to a command it sent (``confirm``; the reader sends a ``PING`` when it has nothing else to ask): that
  reply came after every push for a change Redis made before that command. So a Redis that stalls, or a
  network that drops the pushes, stops the serving of copies within ``lease_s``, before a writer elsewhere
  can give up on its own Redis write (``redis.socket_timeout_s``, twice the default lease) and acknowledge.
* **Bounded by bytes**: oldest copies are dropped first (insertion order); a value larger than 1/64 of the
  budget is never kept.

One thread reads (the router loop: ``get``, ``put``, ``invalidated``); writers on other threads call ``drop``
and ``clear``. Reads take no lock (one ``dict.get``).
"""
from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from typing import Any

ENTRY_OVERHEAD = 200        # bytes counted per copy beyond its value (key, tuple, dict slot), roughly


def near_lease_s(socket_timeout_s: float) -> float:
    """The lease for a hub whose Redis writes give up after ``socket_timeout_s``: well inside it (at most
    0.25 s: the reader pings when idle, the router loop passes at least every 0.1 s)."""
    return min(0.25, socket_timeout_s / 2)


class NearCache:
    def __init__(self, max_bytes: int, clear_on: Iterable[bytes] = (), lease_s: float = 0.25):
        """``clear_on``: keys whose change disowns every copy (e.g. a hot cache's generation key)."""
        self.max_bytes = max_bytes
        self.lease_s = lease_s
        self.confirmed_at = 0.0          # when the latest command that Redis answered was sent
        self.max_entry_bytes = max_bytes // 64
        self._clear_on = frozenset(clear_on)
        self._entries: dict[bytes, tuple[Any, int]] = {}     # key -> (value, bytes counted)
        self._bytes = 0
        self._epoch = 0
        self._tracking = False
        self._lock = threading.Lock()
        self.hits = 0

    # ------------------------------------------------------------------ the reading thread
    def get(self, key: bytes) -> Any:
        held = self._entries.get(key)
        if held is None or time.monotonic() - self.confirmed_at >= self.lease_s:
            return None
        self.hits += 1
        return held[0]

    def confirm(self, sent_at: float) -> None:
        """Redis answered a command sent at ``sent_at`` (monotonic): every earlier change's push is in."""
        if sent_at > self.confirmed_at:
            self.confirmed_at = sent_at

    def epoch(self) -> int | None:
        """What a read sent now passes to ``put`` with its reply; None: its reply may not be kept."""
        return self._epoch if self._tracking else None

    def put(self, key: bytes, value: Any, size: int, epoch: int | None) -> None:
        """Keep ``value`` (read by a command sent at ``epoch``) unless a drop or a reset came in between."""
        if epoch is None or size > self.max_entry_bytes:
            return
        cost = size + len(key) + ENTRY_OVERHEAD
        with self._lock:
            if epoch != self._epoch:
                return
            entries = self._entries
            old = entries.pop(key, None)
            if old is not None:
                self._bytes -= old[1]
            while entries and self._bytes + cost > self.max_bytes:
                self._bytes -= entries.pop(next(iter(entries)))[1]
            entries[key] = (value, cost)
            self._bytes += cost

    def invalidated(self, keys: list[bytes] | None) -> None:
        """A Redis ``invalidate`` push: these keys changed (None: all of them, e.g. ``FLUSHDB``)."""
        if keys is None or not self._clear_on.isdisjoint(keys):
            self.clear()
            return
        with self._lock:
            self._remove(keys)

    # ------------------------------------------------------------------ the reader's connection
    def start(self) -> None:
        """The reader's connection tracks its reads from now on: copies may be kept."""
        with self._lock:
            self._forget()
            self._tracking = True

    def reset(self) -> None:
        """The tracking connection is gone (its invalidations with it): drop everything, keep nothing."""
        with self._lock:
            self._forget()
            self._tracking = False

    # ------------------------------------------------------------------ writers (any thread)
    def drop(self, keys: Iterable[bytes]) -> None:
        """This hub changed ``keys`` (call before and after the Redis write that changes them)."""
        with self._lock:
            self._epoch += 1
            self._remove(keys)

    def clear(self) -> None:
        with self._lock:
            self._forget()

    # ------------------------------------------------------------------ state
    @property
    def tracking(self) -> bool:
        return self._tracking

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def size_bytes(self) -> int:
        return self._bytes

    def describe(self) -> dict[str, Any]:
        """For health details: whether copies are kept now, how many, their bytes, and hits so far."""
        return {"tracking": self._tracking, "entries": len(self._entries), "bytes": self._bytes,
                "max_bytes": self.max_bytes, "hits": self.hits,
                "confirmed_s_ago": round(time.monotonic() - self.confirmed_at, 3) if self.confirmed_at else None}

    def _remove(self, keys: Iterable[bytes]) -> None:
        for key in keys:
            old = self._entries.pop(key, None)
            if old is not None:
                self._bytes -= old[1]

    def _forget(self) -> None:
        self._epoch += 1
        self._entries.clear()
        self._bytes = 0
