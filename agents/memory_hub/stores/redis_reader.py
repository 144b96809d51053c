"""Non-blocking Redis reads driven by the hub's router loop: no thread hop for a read served from Redis.

``RedisReader`` owns one connection of a logical database. ``send(callback, *command)`` buffers the command
(the loop's ``tick()`` before each poll writes everything buffered in that pass in one system call, never
waiting: a partial write is finished on the next pass) and queues the callback; when the
socket is readable the loop calls ``ready()``, which parses the replies that arrived and calls their callbacks
in order, with the decoded reply or a ``RedisUnavailable``. The loop also calls ``tick()`` on every pass: a
reply overdue by ``timeout_s`` fails every queued callback and drops the connection, so a stalled Redis
costs the waiting reads an error (their callers fall back to the blocking path) and never stalls the loop.
A handler may hand the reader an ``on_tick`` callable, run first in every ``tick``: there it can send, as
one command, the reads it gathered during the loop's last pass (``kv.KeyValues`` does: one ``MGET``).

Connecting happens on a background thread through the store's connection pool (so the server's ``run_id``
is checked and ``SELECT`` is sent exactly as for every other connection); until it is up ``send`` returns
False and the caller uses the blocking path. The bus polls ``fileno()`` (it changes on reconnect; None while
there is no connection). The reader belongs to the thread that drives it (the first to call ``tick``: the
router); ``send`` from any other thread (e.g. the HTTP server's) returns False, so the caller blocks instead.

With a ``NearCache`` the reader switches each new connection to RESP3 with ``CLIENT TRACKING ON NOLOOP``
(Redis 6+) before any read; Redis's ``invalidate`` pushes arrive on the same connection, between the
replies, and go to the near cache (``stores/near_cache.py``), which the reader resets when it loses the
connection.
"""
from __future__ import annotations

import collections
import contextlib
import ssl
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import redis

from agents.memory_hub.stores.near_cache import NearCache
from agents.memory_hub.stores.redis_store import RedisUnavailable

log = logging.getLogger(__name__)

Callback = Callable[[Any], None]


class _Incomplete(Exception):
    pass


def encode_command(*parts: bytes | str) -> bytes:
    out = [b"*%d\r\n" % len(parts)]
    for part in parts:
        data = part.encode() if isinstance(part, str) else part
        out.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(out)


_DOLLAR, _STAR, _PUSH = ord("$"), ord("*"), ord(">")
_SKIP_REPLY = encode_command("CLIENT", "REPLY", "SKIP")


def parse_reply(buf: bytes, pos: int) -> tuple[Any, int]:
    """One RESP2 or RESP3 reply (the pool's connections negotiate either) starting at ``pos``: (value,
    position after it); ``_Incomplete`` if it is not all there. Errors come back as ``redis.ResponseError``."""
    end = buf.find(b"\r\n", pos)
    if end < 0:
        raise _Incomplete
    kind = buf[pos]
    if kind == _DOLLAR:                          # the usual replies first: a bulk string...
        size = int(buf[pos + 1:end])
        if size < 0:
            return None, end + 2
        stop = end + 2 + size
        if len(buf) < stop + 2:
            raise _Incomplete
        return buf[end + 2:stop], stop + 2
    if kind == _STAR:                            # ... and an array (of bulk strings, read inline: an MGET)
        return _array(buf, int(buf[pos + 1:end]), end + 2)
    return _parse_other(buf, pos, end)


def _array(buf: bytes, count: int, after: int) -> tuple[list[Any] | None, int]:
    if count < 0:
        return None, after
    items: list[Any] = []
    append, find, length = items.append, buf.find, len(buf)
    for _ in range(count):
        if after < length and buf[after] == _DOLLAR:
            stop = find(b"\r\n", after)
            if stop < 0:
                raise _Incomplete
            size = int(buf[after + 1:stop])
            if size < 0:
                append(None)
                after = stop + 2
                continue
            after = stop + 2 + size
            if length < after + 2:
                raise _Incomplete
            append(buf[stop + 2:after])
            after += 2
        else:
            item, after = parse_reply(buf, after)
            append(item)
    return items, after


def _needed(buf: bytes | bytearray, pos: int) -> int:
    """The length ``buf`` must reach before the reply at ``pos`` can be complete (its end when it is): a
    large reply is not parsed again (copying what it holds) for every part that arrives."""
    end = buf.find(b"\r\n", pos)
    if end < 0:
        return len(buf) + 1
    kind = buf[pos]
    if kind in _SIZED:                           # bulk, verbatim string, bulk error
        size = int(buf[pos + 1:end])
        return end + 2 if size < 0 else end + size + 4
    if kind in _AGGREGATE:                       # array, set, push, map (two items per entry)
        after = end + 2
        for _ in range(int(buf[pos + 1:end]) * (2 if kind == _MAP else 1)):
            after = _needed(buf, after) if after < len(buf) else len(buf) + 1
            if after > len(buf):
                break
        return after
    return end + 2                               # one line (parse_reply rejects an unknown kind)


_SIZED, _AGGREGATE, _MAP = frozenset(b"$=!"), frozenset(b"*~>%"), ord("%")


def _parse_other(buf: bytes, pos: int, end: int) -> tuple[Any, int]:
    kind, line, after = buf[pos:pos + 1], buf[pos + 1:end], end + 2
    if kind in (b"=", b"!"):                     # verbatim string, bulk error
        size = int(line)
        if size < 0:
            return None, after
        if len(buf) < after + size + 2:
            raise _Incomplete
        data = buf[after:after + size]
        if kind == b"!":
            return redis.ResponseError(data.decode("utf-8", "replace")), after + size + 2
        return data[4:], after + size + 2
    if kind in (b"~", b">", b"%"):               # set, push, map (flattened: key, value, ...)
        count = int(line)
        if count < 0:
            return None, after
        items = []
        for _ in range(count * 2 if kind == b"%" else count):
            item, after = parse_reply(buf, after)
            items.append(item)
        return items, after
    if kind in (b":", b"("):
        return int(line), after
    if kind == b",":
        return float(line), after
    if kind == b"#":
        return line == b"t", after
    if kind == b"_":
        return None, after
    if kind == b"+":
        return line, after
    if kind == b"-":
        return redis.ResponseError(line.decode("utf-8", "replace")), after
    raise RedisUnavailable(f"Redis sent an unexpected reply type {kind!r}")


class RedisReader:
    def __init__(self, pool: redis.ConnectionPool, timeout_s: float = 0.5, retry_s: float = 1.0,
                 on_tick: Callable[[], None] | None = None, near: NearCache | None = None):
        """``on_tick`` runs first in every ``tick`` (on the driving thread): e.g. to send the reads a
        handler gathered during the loop's last pass as one command. ``near``: kept current by tracking
        (see the module docstring); it keeps copies only while this reader's connection tracks."""
        self._pool = pool
        self._on_tick = on_tick
        self._near = near
        self.timeout_s = timeout_s
        self.retry_s = retry_s
        self._conn: Any = None
        self._sock: Any = None
        self._out = bytearray()
        self._in = bytearray()               # the start of a reply whose rest has not arrived ...
        self._need = 0                       # ... and the length it must reach before it can be complete
        self._waiting: collections.deque[tuple[Callback, float]] = collections.deque()
        self._lock = threading.Lock()
        self._ready_conn: Any = None          # handed over by the connect thread
        self._connecting = False
        self._next_attempt = 0.0
        self._closed = False
        self._owner: int | None = None
        self._pinging = False

    # ------------------------------------------------------------------ used by handlers (router thread)
    def send(self, callback: Callback, *command: bytes | str) -> bool:
        """Queue ``command``; ``callback(reply)`` follows from ``ready``/``tick``. False: not now (no
        connection yet, or not called on the thread that drives the reader)."""
        if threading.get_ident() != self._owner:
            return False
        if self._sock is None:
            self._adopt()
            if self._sock is None:
                self._connect_soon()
                return False
        self._out += encode_command(*command)
        self._waiting.append((callback, time.monotonic()))
        return True

    def send_unanswered(self, *command: bytes | str) -> bool:
        """Queue ``command`` with ``CLIENT REPLY SKIP`` before it: Redis runs it and sends no reply (nor an
        error), so the loop is not woken for it. False: not now (as ``send``). (Redis 6 also drops the pushes
        it makes *during* that command: only expiries and evictions it causes, which change no value.)"""
        if threading.get_ident() != self._owner or self._sock is None:
            return False
        self._out += _SKIP_REPLY + encode_command(*command)
        return True

    def driven_here(self) -> bool:
        """True on the thread that drives the reader (the only one whose ``send`` can succeed)."""
        return threading.get_ident() == self._owner

    # ------------------------------------------------------------------ driven by the bus loop
    def fileno(self) -> int | None:
        return self._sock.fileno() if self._sock is not None else None

    def ready(self) -> None:
        """The socket is readable: parse and deliver every complete reply."""
        if self._sock is None:
            return
        try:
            data = self._sock.recv(1 << 16)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self._fail(f"redis read failed: {exc}")
            return
        if not data:
            self._fail("redis closed the connection")
            return
        try:
            if self._in:                     # a large reply arriving in parts: parsed once it is all there
                self._in += data
                if len(self._in) < self._need:
                    return
                self._need = _needed(self._in, 0)
                if len(self._in) < self._need:
                    return
                data = bytes(self._in)
                self._in.clear()
            self._deliver_all(data)
        except (ValueError, RedisUnavailable) as exc:
            self._fail(f"redis reply not understood: {exc}")

    def _deliver_all(self, buf: bytes) -> None:
        sock, pos, end = self._sock, 0, len(buf)
        try:
            while pos < end and self._sock is sock:      # (a callback may close the reader)
                if buf[pos] == _PUSH:
                    value, pos = parse_reply(buf, pos)
                    self._pushed(value)
                elif self._waiting:
                    value, pos = parse_reply(buf, pos)
                    callback, sent = self._waiting.popleft()
                    _deliver(callback, value)
                    if self._near is not None:
                        self._near.confirm(sent)
                else:
                    raise RedisUnavailable("Redis sent a reply nobody asked for")
        except _Incomplete:
            pass
        if pos < end and self._sock is sock:
            self._in = bytearray(memoryview(buf)[pos:])
            self._need = _needed(self._in, 0)

    def tick(self) -> bool:
        """Write what is buffered, fail overdue reads; True when output is left for the next pass."""
        if self._owner is None:
            self._owner = threading.get_ident()
        if self._on_tick is not None:
            try:
                self._on_tick()
            except Exception:            # a defect there must not end the router loop
                log.exception("redis reader on_tick failed")
        if self._sock is None:
            self._adopt()
            return False
        near = self._near
        if (near is not None and near.tracking and not self._pinging
                and time.monotonic() - near.confirmed_at >= near.lease_s / 3):
            self._pinging = self.send(self._pinged, "PING")     # keeps the near copies' lease
        if self._out:
            self._flush()
        if self._waiting and time.monotonic() - self._waiting[0][1] > self.timeout_s:
            self._fail(f"redis did not answer within {self.timeout_s} s")
        return bool(self._out)

    def close(self) -> None:
        self._closed = True
        self._fail("closed")
        with self._lock:
            spare, self._ready_conn = self._ready_conn, None
        if spare is not None:
            spare.disconnect()

    # ------------------------------------------------------------------ internals
    def _flush(self) -> None:
        try:
            sent = self._sock.send(self._out)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self._fail(f"redis write failed: {exc}")
            return
        del self._out[:sent]

    def _pinged(self, _reply: Any) -> None:
        self._pinging = False

    def _pushed(self, message: Any) -> None:
        if (self._near is not None and type(message) is list and len(message) == 2
                and message[0] == b"invalidate"):
            self._near.invalidated(message[1])

    def _fail(self, why: str) -> None:
        if self._near is not None:
            self._near.reset()
        self._pinging = False
        waiting, self._waiting = self._waiting, collections.deque()
        if self._conn is not None:
            log.warning("redis reader: %s; %d reads fall back", why, len(waiting))
            with contextlib.suppress(Exception):
                self._conn.disconnect()
        self._conn = self._sock = None
        self._out.clear()
        self._in.clear()
        self._next_attempt = time.monotonic() + self.retry_s
        error = RedisUnavailable()
        for callback, _ in waiting:
            _deliver(callback, error)

    def _adopt(self) -> None:
        with self._lock:
            conn, self._ready_conn = self._ready_conn, None
        if conn is None:
            return
        self._conn, self._sock = conn, conn._sock
        self._sock.setblocking(False)
        if self._near is not None:
            self._start_tracking(self._near)

    def _start_tracking(self, near: NearCache) -> None:
        """RESP3 (pushes on this connection) and tracking of every key it reads, sent before any read."""
        resp3: list[bool] = []

        def hello(reply: Any) -> None:
            resp3.append(type(reply) is list)        # HELLO 3 answers a map; Redis 5 an error

        def tracking(reply: Any) -> None:
            if resp3 == [True] and reply in (b"OK", "OK"):
                near.start()
            else:
                log.info("redis reader: no client tracking (%s); reads are not kept in process", reply)

        now = time.monotonic()
        self._out += encode_command("HELLO", "3") + encode_command("CLIENT", "TRACKING", "ON", "NOLOOP")
        self._waiting.append((hello, now))
        self._waiting.append((tracking, now))

    def _connect_soon(self) -> None:
        now = time.monotonic()
        with self._lock:
            if self._connecting or self._closed or now < self._next_attempt:
                return
            self._connecting = True
        threading.Thread(target=self._connect, name="redis-reader-connect", daemon=True).start()

    def _connect(self) -> None:
        conn = self._pool.make_connection()
        try:
            conn.connect()               # SELECT and the store's run_id check happen here
        except Exception as exc:
            log.debug("redis reader could not connect: %s", exc)
            conn = None
        if conn is not None and isinstance(conn._sock, ssl.SSLSocket):
            # TLS buffers records the poller cannot see: rediss:// reads keep the blocking path
            log.info("redis reader off for a TLS connection; reads use the blocking path")
            conn.disconnect()
            conn, self._closed = None, True
        with self._lock:
            self._connecting = False
            if conn is None:
                self._next_attempt = time.monotonic() + self.retry_s
            elif self._closed:
                conn.disconnect()
            else:
                self._ready_conn = conn


def _deliver(callback: Callback, value: Any) -> None:
    try:
        callback(value)
    except Exception:
        log.exception("redis reader callback failed")
