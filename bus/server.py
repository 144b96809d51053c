"""The hub's ZeroMQ loop: native ROUTER, legacy ROUTERs, worker results; deadlines; graceful drain.

One thread (the caller of ``serve_forever``) owns every ROUTER socket, including the inproc ROUTER the HTTP
frontend forwards REST calls to (``http_endpoint``): HTTP is served by the same dispatcher, pool, queue limit,
deadlines and metrics as the native port. Blocking handler calls run on the ``WorkerPool``; their replies come
back through the ``ReplyChannel`` (polled beside the sockets). Every request that has a routing identity gets
exactly one reply (plus stream chunks when asked): the handler's, or ``busy``, or ``timeout`` when its deadline
passes first, or a ``bad_request``/``too_large`` for frames that cannot be served.

Thread hops: the requests read in one pass of the loop are handed to the pool in batches, one queue
operation per worker, for the actions whose measured service time (``HandOff``) is short; any other
request travels alone, so a slow action never waits behind another. An action may return a
``concurrent.futures.Future`` (e.g. a generation on a model's own thread): its worker is free at once and
the reply is sent when the future completes; stream chunks go through the same channel from any thread.
An ``inline`` action runs on this thread with no hop at all; it may return a future that a handler's
*watched* source completes (non-blocking I/O whose descriptor this loop polls, e.g. a Redis connection):
then the reply leaves as soon as that source reads it, and a stalled server delays only those requests.

Per pass, the loop waits on every socket at once (``SocketPoller``: the cost of the wait does not grow with
the ~30 legacy ports), reads every ready frame (up to ``RECV_BATCH`` per socket) and sends the replies of the
pass back to back at its end (or every ``SEND_BURST``): each reply sent alone woke ZeroMQ's I/O thread.
Request counts and latencies are kept by this thread without locks (``bus.metrics.RequestStats``).
"""
from __future__ import annotations

import heapq
import itertools
import threading
import time
import uuid
from dataclasses import dataclass, field
from collections.abc import Callable
from typing import Any

import zmq
from zmq.backend import Socket as _BaseSocket

from bus.channel import ReplyChannel
from bus.dispatch import Call, Dispatcher
from bus.errors import BadRequest, Busy, HubError, Internal, Timeout, TooLarge
from bus.legacy import (LegacyBinding, decode_legacy, encode_legacy, legacy_error)
from bus.log import get_logger
from bus.metrics import ActionSeries, HubMetrics
from bus.socket_poller import SocketPoller, has_input
from bus.wire import MSGPACK, RequestError, detect_encoding, encode, error_reply, parse_request
from bus.workers import Job, WorkerPool

log = get_logger("bus.server")
Reply = dict[str, Any]
ChannelItem = tuple[int, bytes, str, bool]      # request key, reply frame, outcome, more (a stream chunk)
RECV_BATCH = 256
DEADLINE_SLACK = 1024     # answered requests' deadlines kept before the heap is rebuilt
SEND_BURST = 64            # replies queued in a pass are sent when this many wait, and at the end of the pass

# The per-frame calls of the loop go to pyzmq's compiled socket methods with plain int flags: the Python
# wrappers (``send_multipart``/``recv_multipart``) and the ``IntFlag`` arithmetic cost more than the I/O.
_recv_frame = _BaseSocket.recv
_send_frame = _BaseSocket.send
_NOBLOCK = int(zmq.NOBLOCK)
_MORE_NOBLOCK = int(zmq.SNDMORE | zmq.NOBLOCK)


@dataclass(slots=True)
class Pending:
    sock: zmq.Socket[Any]
    envelope: list[bytes]
    request_id: Any
    encoding: str              # json | msgpack | legacy
    agent: str
    action: str
    started: float
    deadline: float


@dataclass
class ServerLimits:
    max_frame_bytes: int
    default_deadline_s: float
    drain_timeout_s: float


@dataclass
class Sockets:
    native: zmq.Socket[Any]
    legacy: dict[zmq.Socket[Any], LegacyBinding] = field(default_factory=dict)


class HandOff:
    """Which requests share a hand-off to the pool: actions whose recent service time is under ``quick_s``
    (an exponentially weighted average per action, measured on the workers; unmeasured ones go alone)."""

    def __init__(self, quick_s: float = 0.001, weight: float = 0.1):
        self.quick_s = quick_s
        self.weight = weight
        self._avg: dict[tuple[str, str], float] = {}

    def quick(self, kind: tuple[str, str]) -> bool:
        return self._avg.get(kind, self.quick_s) < self.quick_s

    def observe(self, kind: tuple[str, str], seconds: float) -> None:
        old = self._avg.get(kind)
        self._avg[kind] = seconds if old is None else old + self.weight * (seconds - old)


class HubServer:
    def __init__(self, context: zmq.Context[Any], dispatcher: Dispatcher, metrics: HubMetrics, pool_threads: int,
                 queue_limit: int, limits: ServerLimits):
        self.context = context
        self.dispatcher = dispatcher
        self.metrics = metrics
        self.limits = limits
        self.channel = ReplyChannel()
        self.pool = WorkerPool(self.channel, pool_threads, queue_limit)
        metrics.in_flight.set_function(lambda: len(self._pending))
        metrics.queue_depth.set_function(lambda: self.pool.pending)
        self.handoff = HandOff()
        self._series: dict[tuple[str, str], ActionSeries] = {}
        self._watched: list[list[Any]] = []          # [source, descriptor registered for it or None]
        self._poller = SocketPoller()
        self._loop_thread: int | None = None
        self._batch: list[tuple[int, Pending, Job]] = []
        self._outbox: list[tuple[zmq.Socket[Any], list[bytes], bytes]] = []
        self._inline_key: int | None = None          # the inline call inside ``dispatcher.execute`` now
        self._inline_early: Reply | None = None       # its reply, when its future completed right there
        self.http_endpoint = f"inproc://http-{uuid.uuid4().hex}"
        self._http = context.socket(zmq.ROUTER)
        self._http.setsockopt(zmq.LINGER, 0)
        self._http.bind(self.http_endpoint)
        self._pending: dict[int, Pending] = {}
        self._deadlines: list[tuple[float, int]] = []
        self._keys = itertools.count(1)
        self._stopping = False
        self.sockets: Sockets | None = None
        # (agent, legacy port, exception) after a legacy handler raised; must not block
        self.legacy_failure_hooks: list[Callable[[str, int, BaseException], None]] = []

    # -- lifecycle -------------------------------------------------------------------------------------
    def attach(self, sockets: Sockets) -> None:
        self.sockets = sockets

    def watch(self, source: Any) -> None:
        """Poll ``source`` (see ``bus.handler``: ``fileno``/``ready``/``tick``) on the router loop."""
        self._watched.append([source, None])

    def request_stop(self) -> None:
        self._stopping = True

    @property
    def in_flight(self) -> int:
        return len(self._pending)

    def serve_forever(self, on_tick: Callable[[], None] | None = None) -> None:
        assert self.sockets is not None
        self._loop_thread = threading.get_ident()
        self.pool.start()
        self._poller.register_fd(self.channel.fileno())
        for sock in [self.sockets.native, self._http, *self.sockets.legacy]:
            self._poller.register_socket(sock)
        while not self._stopping:
            self._poll_once(accept=True)
            if on_tick:
                on_tick()
        self._drain()

    def _drain(self) -> None:
        # Stop reading new requests but keep the sockets bound: unbinding a TCP endpoint would close the
        # connections whose replies are still in flight.
        until = time.monotonic() + self.limits.drain_timeout_s
        while self._pending and time.monotonic() < until:
            self._poll_once(accept=False)
        if self._pending:
            log.warning("drain_timeout", unanswered=len(self._pending))
        self.pool.stop()

    def close(self) -> None:
        if self.sockets:
            self.sockets.native.close(linger=500)
            for sock in self.sockets.legacy:
                sock.close(linger=500)
        self.channel.close()
        self._http.close(linger=0)

    # -- loop ------------------------------------------------------------------------------------------
    def _poll_once(self, accept: bool) -> None:
        timeout_ms = self._next_timeout_ms()
        if self._tick_watched():
            timeout_ms = min(timeout_ms, 1)     # a source could not write everything: come back soon
        sockets, descriptors = self._poller.poll(timeout_ms)
        for source, fd in self._watched:
            if fd is not None and fd in descriptors:
                source.ready()
        if self.channel.fileno() in descriptors:
            self._take_results()
        if accept:
            for sock in sockets:
                self._take_requests(sock)
            self._flush_batch()
        self._expire_deadlines()
        self._flush_replies()

    def _tick_watched(self) -> bool:
        """Before each poll: let every watched source flush and expire, and (re)register its descriptor.
        True when a source still has output it could not write."""
        unwritten = False
        for entry in self._watched:
            unwritten = bool(entry[0].tick()) or unwritten
            fd = entry[0].fileno()
            if fd != entry[1]:
                if entry[1] is not None:
                    self._poller.unregister_fd(entry[1])
                if fd is not None:
                    self._poller.register_fd(fd)
                entry[1] = fd
        return unwritten

    def _next_timeout_ms(self) -> int:
        if not self._deadlines:
            return 100
        wait = self._deadlines[0][0] - time.monotonic()
        return max(0, min(100, int(wait * 1000) + 1))

    def _take_requests(self, sock: zmq.Socket[Any]) -> None:
        assert self.sockets is not None
        binding = self.sockets.legacy.get(sock)
        for count in range(RECV_BATCH):
            if count == 1 and not has_input(sock):
                return      # one request this pass (the usual case when clients wait for replies): no Again raised
            try:
                part = _recv_frame(sock, _NOBLOCK, False)
            except zmq.Again:
                return
            frames = [part.bytes]
            while part.more:     # the rest of a multipart message is there with its first frame
                part = _recv_frame(sock, _NOBLOCK, False)
                frames.append(part.bytes)
            try:
                self._on_message(sock, binding, frames, part)
            except Exception as exc:    # a defect in one request's handling must not end the router loop
                log.error("router_message_failed", error=repr(exc), exc_info=True)

    def _on_message(self, sock: zmq.Socket[Any], binding: LegacyBinding | None, frames: list[bytes],
                    last: zmq.Frame) -> None:
        if sock is self._http:
            self._on_http(sock, frames)
        elif binding is None:
            self._on_native(sock, frames, _peer_address(last))
        elif binding.health:
            self._on_legacy_health(sock, binding, frames)
        else:
            self._on_legacy(sock, binding, frames, _peer_address(last))

    def _take_results(self) -> None:
        for key, payload, outcome, more in self.channel.drain():
            pending = self._pending.get(key) if more else self._pending.pop(key, None)
            if pending is None:
                self.metrics.late_replies.inc()
                continue
            self._send(pending.sock, pending.envelope, payload)
            if not more:
                self._record(pending, outcome)

    def _expire_deadlines(self) -> None:
        now = time.monotonic()
        while self._deadlines and self._deadlines[0][0] <= now:
            _, key = heapq.heappop(self._deadlines)
            pending = self._pending.pop(key, None)
            if pending is None:
                continue
            if pending.encoding == "legacy":
                payload = encode_legacy(legacy_error("Request timed out"))
            else:
                err = Timeout(f"deadline passed before {pending.agent}.{pending.action} finished")
                payload = encode(error_reply(pending.request_id, err), pending.encoding)
            self._send(pending.sock, pending.envelope, payload)
            self._record(pending, "timeout")

    # -- native ----------------------------------------------------------------------------------------
    def _on_http(self, sock: zmq.Socket[Any], frames: list[bytes]) -> None:
        """``[identity, client address, payload]`` from the HTTP frontend: served exactly as a native request."""
        if len(frames) == 3:
            self._on_native(sock, [frames[0], frames[2]], frames[1].decode("utf-8", "replace") or None, "http")

    def _on_native(self, sock: zmq.Socket[Any], frames: list[bytes], peer: str | None = None,
                   transport: str = "native") -> None:
        if len(frames) < 2:
            self._reply_error(sock, frames[:1], None, MSGPACK, BadRequest("empty message: no payload frame"))
            return
        envelope, payload = frames[:-1], frames[-1]
        encoding = detect_encoding(payload)
        if len(payload) > self.limits.max_frame_bytes:
            self._reply_error(sock, envelope, None, encoding,
                              TooLarge(f"frame of {len(payload)} bytes exceeds {self.limits.max_frame_bytes}"))
            return
        try:
            req = parse_request(payload)
        except RequestError as exc:
            self._reply_error(sock, envelope, exc.request_id, exc.encoding, exc.error)
            return
        try:
            call = self.dispatcher.resolve(req, transport, peer=peer)
        except HubError as err:
            known = req.agent in self.dispatcher.handlers and err.code != "unknown_action"
            self._reply_error(sock, envelope, req.id, req.encoding, err, agent=req.agent if known else None,
                              action=req.action if known else None)
            return
        except Exception as exc:       # a defect in a schema or a route: this request fails, the hub serves on
            log.error("resolve_failed", agent=req.agent, action=req.action, error=repr(exc), exc_info=True)
            self._reply_error(sock, envelope, req.id, req.encoding, Internal("internal error"))
            return
        if call.spec.inline:
            self._run_inline(sock, envelope, req.encoding, call)
            return
        self._submit_native(sock, envelope, req.encoding, call, req.stream)

    def _run_inline(self, sock: zmq.Socket[Any], envelope: list[bytes], encoding: str, call: Call) -> None:
        """On the router thread. An action that returns a future is answered when it completes: at once if
        that happens on this thread (e.g. by a watched source), else through the channel. Only a deferred
        reply is registered as pending (with its deadline)."""
        started = time.monotonic()
        key = next(self._keys)
        self._inline_key = key
        try:
            reply = self.dispatcher.execute(call, on_done=lambda done: self._inline_done(key, encoding, done))
        finally:
            self._inline_key = None
        if reply is None:       # a future: done already (on this thread, during execute) or later
            reply, self._inline_early = self._inline_early, None
        ctx = call.ctx
        if reply is not None:
            self._send(sock, envelope, encode(reply, encoding))
            self._observe(ctx.agent, ctx.action, _outcome(reply), started)
            return
        deadline = ctx.deadline or started + self.limits.default_deadline_s
        self._pending[key] = Pending(sock, envelope, ctx.request_id, encoding, ctx.agent, ctx.action, started,
                                     deadline)
        self._watch_deadline(deadline, key)

    def _inline_done(self, key: int, encoding: str, reply: Reply) -> None:
        if threading.get_ident() != self._loop_thread:
            self.channel.put((key, encode(reply, encoding), _outcome(reply), False))
            return
        if key == self._inline_key:     # completed inside ``execute``: ``_run_inline`` answers it
            self._inline_early = reply
            return
        pending = self._pending.pop(key, None)
        if pending is None:
            self.metrics.late_replies.inc()
            return
        self._send(pending.sock, pending.envelope, encode(reply, encoding))
        self._record(pending, _outcome(reply))

    def _submit_native(self, sock: zmq.Socket[Any], envelope: list[bytes], encoding: str, call: Call,
                       stream: bool) -> None:
        now = time.monotonic()
        if call.ctx.deadline is None:
            call.ctx.deadline = now + self.limits.default_deadline_s
        key = next(self._keys)
        pending = Pending(sock, envelope, call.ctx.request_id, encoding, call.ctx.agent, call.ctx.action, now,
                          call.ctx.deadline)
        streaming = stream and call.spec.stream
        job = self._native_job(key, call, encoding, streaming)
        quick = not streaming and self.handoff.quick((call.ctx.agent, call.ctx.action))
        self._enqueue(key, pending, job, quick)

    def _native_job(self, key: int, call: Call, encoding: str, stream: bool) -> Job:
        dispatcher, channel, handoff = self.dispatcher, self.channel, self.handoff
        kind = (call.ctx.agent, call.ctx.action)

        def done(reply: Reply) -> None:      # on the worker, or on whichever thread completes a future
            if stream:
                reply["stream"], reply["final"] = True, True
            channel.put((key, encode(reply, encoding), _outcome(reply), False))

        def job() -> ChannelItem | None:
            if call.ctx.deadline is not None and time.monotonic() > call.ctx.deadline:
                return None  # the loop has answered `timeout` (or will at once)
            if stream:
                call.ctx.stream = lambda chunk: channel.put(
                    (key, encode({"v": 1, "id": call.ctx.request_id, "ok": True, "stream": True, "final": False,
                                  "chunk": chunk}, encoding), "ok", True))
            started = time.perf_counter()
            reply = dispatcher.execute(call, on_done=done)
            handoff.observe(kind, time.perf_counter() - started)
            if reply is None:   # a future: `done` answers when it completes
                return None
            if stream:
                reply["stream"], reply["final"] = True, True
            return key, encode(reply, encoding), _outcome(reply), False

        return job

    # -- legacy ----------------------------------------------------------------------------------------
    def _on_legacy(self, sock: zmq.Socket[Any], binding: LegacyBinding, frames: list[bytes],
                   peer: str | None = None) -> None:
        envelope, payload = frames[:-1], frames[-1]
        agent = binding.handler.name
        self.metrics.legacy.labels(agent, str(binding.port), "main").inc()
        if len(payload) > self.limits.max_frame_bytes:
            self._send(sock, envelope, encode_legacy(legacy_error("Request too large")))
            return
        request, error = decode_legacy(payload, binding.handler.legacy_vocabulary)
        if error is not None:
            self._send(sock, envelope, encode_legacy(error))
            return
        now = time.monotonic()
        key = next(self._keys)
        pending = Pending(sock, envelope, None, "legacy", agent, "legacy", now, now + self.limits.default_deadline_s)
        handler, handoff, kind = binding.handler, self.handoff, (agent, f"legacy:{binding.port}")

        def job() -> ChannelItem:
            started = time.perf_counter()
            try:
                reply = handler.handle_legacy_from(request, binding.port, peer)
                outcome = "ok"
            except Exception as exc:  # legacy BaseAgent answered str(e) for any exception
                log.error("legacy_handler_failed", agent=agent, port=binding.port, error=repr(exc))
                reply, outcome = legacy_error(str(exc)), "internal"
                for hook in self.legacy_failure_hooks:
                    hook(agent, binding.port, exc)
            handoff.observe(kind, time.perf_counter() - started)
            return key, encode_legacy(reply), outcome, False

        self._enqueue(key, pending, job, quick=handoff.quick(kind))

    def _on_legacy_health(self, sock: zmq.Socket[Any], binding: LegacyBinding, frames: list[bytes]) -> None:
        self.metrics.legacy.labels(binding.handler.name, str(binding.port), "health").inc()
        try:
            reply = binding.handler.legacy_health(binding.port)
        except Exception as exc:
            log.error("legacy_health_failed", agent=binding.handler.name, error=repr(exc))
            reply = legacy_error(str(exc))
        self._send(sock, frames[:-1] if len(frames) > 1 else frames, encode_legacy(reply))

    # -- shared ----------------------------------------------------------------------------------------
    def _enqueue(self, key: int, pending: Pending, job: Job, quick: bool) -> None:
        self._pending[key] = pending
        self._watch_deadline(pending.deadline, key)
        if quick:
            self._batch.append((key, pending, job))
        else:
            self._submit([(key, pending, job)])

    def _watch_deadline(self, deadline: float, key: int) -> None:
        heapq.heappush(self._deadlines, (deadline, key))
        if len(self._deadlines) > 2 * len(self._pending) + DEADLINE_SLACK:
            # Most entries belong to requests answered long before their deadline (a read takes a
            # millisecond, the default deadline is seconds): rebuild from the pending ones, in one pass.
            self._deadlines = [(pending.deadline, pending_key) for pending_key, pending in self._pending.items()]
            heapq.heapify(self._deadlines)

    def _flush_batch(self) -> None:
        """Hand the quick requests of this pass to the pool: one batch per worker thread at most."""
        batch, self._batch = self._batch, []
        if not batch:
            return
        size = -(-len(batch) // self.pool.size)
        for start in range(0, len(batch), size):
            self._submit(batch[start:start + size])

    def _submit(self, entries: list[tuple[int, Pending, Job]]) -> None:
        taken = self.pool.submit([job for _, _, job in entries])
        for key, pending, _ in entries[taken:]:
            self._refuse(key, pending)

    def _refuse(self, key: int, pending: Pending) -> None:
        del self._pending[key]
        retry_ms = 20 + 5 * self.pool.pending // max(1, self.pool.size)
        if pending.encoding == "legacy":
            payload = encode_legacy(legacy_error("Hub busy, retry later"))
        else:
            payload = encode(error_reply(pending.request_id, Busy(retry_after_ms=retry_ms)), pending.encoding)
        self._send(pending.sock, pending.envelope, payload)
        self._record(pending, "busy")

    def _reply_error(self, sock: zmq.Socket[Any], envelope: list[bytes], request_id: Any, encoding: str,
                     err: HubError, agent: str | None = None, action: str | None = None) -> None:
        self._send(sock, envelope, encode(error_reply(request_id, err), encoding))
        self.metrics.requests.count(_label(agent), _label(action), err.code)

    def _send(self, sock: zmq.Socket[Any], envelope: list[bytes], payload: bytes) -> None:
        """Queue a reply; the pass sends its replies in bursts (``_flush_replies``)."""
        self._outbox.append((sock, envelope, payload))
        if len(self._outbox) >= SEND_BURST:
            self._flush_replies()

    def _flush_replies(self) -> None:
        # Sent back to back, a burst costs one wake-up of ZeroMQ's I/O thread, where replies sent one at a
        # time between requests each woke it (measured: most of a reply's wall time on a loaded machine).
        outbox, self._outbox = self._outbox, []
        sent_on = None
        for sock, envelope, payload in outbox:
            if sock is not sent_on:
                self._poller.sent_on(sock)
                sent_on = sock
            try:
                for frame in envelope:
                    _send_frame(sock, frame, _MORE_NOBLOCK)
                _send_frame(sock, payload, _NOBLOCK)
            except zmq.Again:
                log.warning("reply_dropped_hwm")  # the peer stopped reading; ROUTER drops rather than block
            except zmq.ZMQError as exc:
                log.warning("reply_failed", error=str(exc))

    def _record(self, pending: Pending, outcome: str) -> None:
        self._observe(pending.agent, pending.action, outcome, pending.started)

    def _observe(self, agent: str, action: str, outcome: str, started: float) -> None:
        series = self._series.get((agent, action))
        if series is None:
            series = self._series[(agent, action)] = self.metrics.requests.series(agent, action)
        self.metrics.requests.observe(series, outcome, time.monotonic() - started)


def _peer_address(frame: zmq.Frame) -> str | None:
    try:
        return str(frame.get("Peer-Address"))
    except zmq.ZMQError:  # not every transport knows its peer (inproc)
        return None


def _outcome(reply: Reply) -> str:
    return "ok" if reply.get("ok") else str(reply.get("error", {}).get("code", "internal"))


def _label(value: Any) -> str:
    return value[:64] if isinstance(value, str) and value else "?"
