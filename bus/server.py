"""The hub's ZeroMQ loop: native ROUTER, legacy ROUTERs, worker results; deadlines; graceful drain.

One thread (the caller of ``serve_forever``) owns every ROUTER socket, including the inproc ROUTER the HTTP
frontend forwards REST calls to (``http_endpoint``): HTTP is served by the same dispatcher, pool, queue limit,
deadlines and metrics as the native port. Blocking handler calls run on the
``WorkerPool``; their replies come back over an inproc PULL. Every request that has a routing identity
gets exactly one reply (plus stream chunks when asked): the handler's, or ``busy``, or ``timeout`` when
its deadline passes first, or a ``bad_request``/``too_large`` for frames that cannot be served.
"""
from __future__ import annotations

import heapq
import itertools
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable

import zmq

from bus.dispatch import Call, Dispatcher
from bus.errors import BadRequest, Busy, HubError, Timeout, TooLarge
from bus.legacy import (LegacyBinding, decode_legacy, encode_legacy, legacy_error)
from bus.log import get_logger
from bus.metrics import HubMetrics
from bus.wire import MSGPACK, RequestError, detect_encoding, encode, error_reply, parse_request
from bus.workers import Emitter, WorkerPool

log = get_logger("bus.server")
RECV_BATCH = 256


@dataclass
class Pending:
    sock: zmq.Socket
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
    native: zmq.Socket
    legacy: dict[zmq.Socket, LegacyBinding] = field(default_factory=dict)


class HubServer:
    def __init__(self, context: zmq.Context, dispatcher: Dispatcher, metrics: HubMetrics, pool_threads: int,
                 queue_limit: int, limits: ServerLimits):
        self.context = context
        self.dispatcher = dispatcher
        self.metrics = metrics
        self.limits = limits
        self._result_endpoint = f"inproc://results-{uuid.uuid4().hex}"
        self._results = context.socket(zmq.PULL)
        self._results.bind(self._result_endpoint)
        self.pool = WorkerPool(context, self._result_endpoint, pool_threads, queue_limit)
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

    def request_stop(self) -> None:
        self._stopping = True

    @property
    def in_flight(self) -> int:
        return len(self._pending)

    def serve_forever(self, on_tick: Callable[[], None] | None = None) -> None:
        assert self.sockets is not None
        self.pool.start()
        poller = zmq.Poller()
        poller.register(self._results, zmq.POLLIN)
        poller.register(self.sockets.native, zmq.POLLIN)
        poller.register(self._http, zmq.POLLIN)
        for sock in self.sockets.legacy:
            poller.register(sock, zmq.POLLIN)
        while not self._stopping:
            self._poll_once(poller, accept=True)
            if on_tick:
                on_tick()
        self._drain(poller)

    def _drain(self, poller: zmq.Poller) -> None:
        # Stop reading new requests but keep the sockets bound: unbinding a TCP endpoint would close the
        # connections whose replies are still in flight.
        until = time.monotonic() + self.limits.drain_timeout_s
        while self._pending and time.monotonic() < until:
            self._poll_once(poller, accept=False)
        if self._pending:
            log.warning("drain_timeout", unanswered=len(self._pending))
        self.pool.stop()

    def close(self) -> None:
        if self.sockets:
            self.sockets.native.close(linger=500)
            for sock in self.sockets.legacy:
                sock.close(linger=500)
        self._results.close(linger=0)
        self._http.close(linger=0)

    # -- loop ------------------------------------------------------------------------------------------
    def _poll_once(self, poller: zmq.Poller, accept: bool) -> None:
        timeout_ms = self._next_timeout_ms()
        events = dict(poller.poll(timeout_ms))
        if self._results in events:
            self._take_results()
        if accept:
            for sock in events:
                if sock is self._results:
                    continue
                self._take_requests(sock)
        self._expire_deadlines()
        self.metrics.in_flight.set(len(self._pending))
        self.metrics.queue_depth.set(self.pool.pending)

    def _next_timeout_ms(self) -> int:
        if not self._deadlines:
            return 100
        wait = self._deadlines[0][0] - time.monotonic()
        return max(0, min(100, int(wait * 1000) + 1))

    def _take_requests(self, sock: zmq.Socket) -> None:
        assert self.sockets is not None
        binding = self.sockets.legacy.get(sock)
        for _ in range(RECV_BATCH):
            try:
                parts = sock.recv_multipart(zmq.NOBLOCK, copy=False)
            except zmq.Again:
                return
            frames = [part.bytes for part in parts]
            if sock is self._http:
                self._on_http(sock, frames)
            elif binding is None:
                self._on_native(sock, frames, _peer_address(parts[-1]))
            elif binding.health:
                self._on_legacy_health(sock, binding, frames)
            else:
                self._on_legacy(sock, binding, frames, _peer_address(parts[-1]))

    def _take_results(self) -> None:
        for _ in range(RECV_BATCH * 4):
            try:
                frames = self._results.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            key = int.from_bytes(frames[0], "big")
            more = frames[3] == b"more"
            pending = self._pending.get(key) if more else self._pending.pop(key, None)
            if pending is None:
                self.metrics.late_replies.inc()
                continue
            self._send(pending.sock, pending.envelope, frames[1])
            if not more:
                self._record(pending, frames[2].decode())

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
    def _on_http(self, sock: zmq.Socket, frames: list[bytes]) -> None:
        """``[identity, client address, payload]`` from the HTTP frontend: served exactly as a native request."""
        if len(frames) == 3:
            self._on_native(sock, [frames[0], frames[2]], frames[1].decode("utf-8", "replace") or None, "http")

    def _on_native(self, sock: zmq.Socket, frames: list[bytes], peer: str | None = None,
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
        if call.spec.inline:
            started = time.monotonic()
            reply = self.dispatcher.execute(call)
            self._send(sock, envelope, encode(reply, req.encoding))
            self._observe(call.ctx.agent, call.ctx.action, _outcome(reply), started)
            return
        self._submit_native(sock, envelope, req.encoding, call, req.stream)

    def _submit_native(self, sock: zmq.Socket, envelope: list[bytes], encoding: str, call: Call,
                       stream: bool) -> None:
        now = time.monotonic()
        if call.ctx.deadline is None:
            call.ctx.deadline = now + self.limits.default_deadline_s
        key = next(self._keys)
        pending = Pending(sock, envelope, call.ctx.request_id, encoding, call.ctx.agent, call.ctx.action, now,
                          call.ctx.deadline)
        job = self._native_job(key, call, encoding, stream and call.spec.stream)
        self._enqueue(key, pending, job)

    def _native_job(self, key: int, call: Call, encoding: str, stream: bool):
        key_bytes = key.to_bytes(8, "big")
        dispatcher = self.dispatcher

        def job(emitter: Emitter) -> list[bytes] | None:
            if call.ctx.deadline is not None and time.monotonic() > call.ctx.deadline:
                return None  # the loop has answered `timeout` (or will at once)
            if stream:
                call.ctx.stream = lambda chunk: emitter.send(
                    [key_bytes, encode({"v": 1, "id": call.ctx.request_id, "ok": True, "stream": True,
                                        "final": False, "chunk": chunk}, encoding), b"ok", b"more"])
            reply = dispatcher.execute(call)
            if stream:
                reply["stream"], reply["final"] = True, True
            return [key_bytes, encode(reply, encoding), _outcome(reply).encode(), b""]

        return job

    # -- legacy ----------------------------------------------------------------------------------------
    def _on_legacy(self, sock: zmq.Socket, binding: LegacyBinding, frames: list[bytes],
                   peer: str | None = None) -> None:
        envelope, payload = frames[:-1], frames[-1]
        agent = binding.handler.name
        self.metrics.legacy.labels(agent, str(binding.port), "main").inc()
        if len(payload) > self.limits.max_frame_bytes:
            self._send(sock, envelope, encode_legacy(legacy_error("Request too large")))
            return
        request, error = decode_legacy(payload)
        if error is not None:
            self._send(sock, envelope, encode_legacy(error))
            return
        now = time.monotonic()
        key = next(self._keys)
        pending = Pending(sock, envelope, None, "legacy", agent, "legacy", now, now + self.limits.default_deadline_s)
        key_bytes = key.to_bytes(8, "big")
        handler = binding.handler

        def job(emitter: Emitter) -> list[bytes] | None:
            try:
                reply = handler.handle_legacy_from(request, binding.port, peer)
                outcome = "ok"
            except Exception as exc:  # legacy BaseAgent answered str(e) for any exception
                log.error("legacy_handler_failed", agent=agent, port=binding.port, error=repr(exc))
                reply, outcome = legacy_error(str(exc)), "internal"
                for hook in self.legacy_failure_hooks:
                    hook(agent, binding.port, exc)
            return [key_bytes, encode_legacy(reply), outcome.encode(), b""]

        self._enqueue(key, pending, job)

    def _on_legacy_health(self, sock: zmq.Socket, binding: LegacyBinding, frames: list[bytes]) -> None:
        self.metrics.legacy.labels(binding.handler.name, str(binding.port), "health").inc()
        try:
            reply = binding.handler.legacy_health(binding.port)
        except Exception as exc:
            log.error("legacy_health_failed", agent=binding.handler.name, error=repr(exc))
            reply = legacy_error(str(exc))
        self._send(sock, frames[:-1] if len(frames) > 1 else frames, encode_legacy(reply))

    # -- shared ----------------------------------------------------------------------------------------
    def _enqueue(self, key: int, pending: Pending, job) -> None:
        self._pending[key] = pending
        if not self.pool.submit(job):
            del self._pending[key]
            retry_ms = 20 + 5 * self.pool.pending // max(1, len(self.pool._threads))
            if pending.encoding == "legacy":
                payload = encode_legacy(legacy_error("Hub busy, retry later"))
            else:
                payload = encode(error_reply(pending.request_id, Busy(retry_after_ms=retry_ms)), pending.encoding)
            self._send(pending.sock, pending.envelope, payload)
            self._record(pending, "busy")
            return
        heapq.heappush(self._deadlines, (pending.deadline, key))

    def _reply_error(self, sock: zmq.Socket, envelope: list[bytes], request_id: Any, encoding: str,
                     err: HubError, agent: str | None = None, action: str | None = None) -> None:
        self._send(sock, envelope, encode(error_reply(request_id, err), encoding))
        self.metrics.requests.labels(_label(agent), _label(action), err.code).inc()
        self.metrics.errors.labels(err.code).inc()

    def _send(self, sock: zmq.Socket, envelope: list[bytes], payload: bytes) -> None:
        try:
            sock.send_multipart([*envelope, payload], zmq.NOBLOCK)
        except zmq.Again:
            log.warning("reply_dropped_hwm")  # the peer stopped reading; ROUTER drops rather than block
        except zmq.ZMQError as exc:
            log.warning("reply_failed", error=str(exc))

    def _record(self, pending: Pending, outcome: str) -> None:
        self._observe(pending.agent, pending.action, outcome, pending.started)

    def _observe(self, agent: str, action: str, outcome: str, started: float) -> None:
        self.metrics.requests.labels(agent, action, outcome).inc()
        self.metrics.latency.labels(agent, action).observe(time.monotonic() - started)
        if outcome != "ok":
            self.metrics.errors.labels(outcome).inc()


def _peer_address(frame: zmq.Frame) -> str | None:
    try:
        return frame.get("Peer-Address")
    except zmq.ZMQError:  # not every transport knows its peer (inproc)
        return None


def _outcome(reply: dict) -> str:
    return "ok" if reply.get("ok") else str(reply.get("error", {}).get("code", "internal"))


def _label(value: Any) -> str:
    return value[:64] if isinstance(value, str) and value else "?"
