"""HTTP on the hub's HTTP port: GET /health, /metrics, /openapi.json, and the route table as REST (Bearer JWT).

Served by uvicorn (h11 parser) running a small ASGI app on a thread of its own. uvicorn is maintained,
asyncio-based (a slow client costs a socket, not a thread), and gives what the stdlib server lacked: a
real listen backlog, a keep-alive idle timeout, a cap on concurrent connections (503 beyond), header size
limits in the parser, and malformed requests (``Content-Length: -1`` / ``abc``) refused with a 400 by h11
before the app sees them. This module adds what uvicorn leaves to the app: a deadline for the request head
(``GuardedH11Protocol``), body size and read-time limits, JSON depth limits and one error shape.

REST calls do not run here: each one is forwarded to the hub's router loop over inproc (``HubServer.
http_endpoint``) as a native request envelope, so HTTP goes through the same dispatcher, worker pool,
``queue_limit`` (busy -> 429 + Retry-After), deadlines (timeout -> 504) and ``hub_requests_total`` as the
native port. Replies are JSON: the native reply's ``result`` with 200, or ``{"error": {...}}`` with the
mapped status.
"""
from __future__ import annotations

import asyncio
import itertools
import json
import socket
import threading
from dataclasses import dataclass
from typing import Any
from collections.abc import Awaitable, Callable

import msgpack
import uvicorn
import zmq
import zmq.asyncio
from uvicorn.protocols.http.h11_impl import H11Protocol

from bus.errors import HTTP_STATUS, BadRequest, HubError, Internal, TooLarge, Unavailable
from bus.errors import Timeout as HubTimeout
from bus.log import get_logger
from bus.metrics import HubMetrics
from bus.settings import setting
from bus.wire import MAX_DEADLINE_MS, MAX_NESTING, nesting_exceeds

log = get_logger("bus.http")


@dataclass(frozen=True)
class HttpSettings:
    """Section ``http``."""

    backlog: int = setting(1024, minimum=1)               # listen(2) backlog of the HTTP port
    max_connections: int = setting(512, minimum=1)        # connections + running requests beyond which: 503
    idle_timeout_s: float = setting(5.0, minimum=0.001)   # keep-alive: an idle connection is closed after this
    request_timeout_s: float = setting(10.0, minimum=0.001)   # the head, then the body, must arrive within this
    max_header_bytes: int = setting(16384, minimum=1024)  # request line + headers (h11); larger is a 400
    max_body_bytes: int = setting(4 * 1024 * 1024, minimum=1)
    reply_margin_s: float = setting(5.0, minimum=0.0)     # wait this long past a deadline for the router's reply


Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


@dataclass(frozen=True)
class HttpLimits:
    backlog: int
    max_connections: int
    idle_timeout_s: float
    request_timeout_s: float
    max_header_bytes: int
    max_body_bytes: int
    reply_margin_s: float
    default_deadline_s: float

    @classmethod
    def from_settings(cls, section: HttpSettings, default_deadline_s: float) -> HttpLimits:
        return cls(section.backlog, section.max_connections, section.idle_timeout_s, section.request_timeout_s,
                   section.max_header_bytes, section.max_body_bytes, section.reply_margin_s, default_deadline_s)


class HttpError(Exception):
    """An answer decided by the HTTP layer itself (before or instead of the router)."""

    def __init__(self, status: int, error: HubError, close: bool = False):
        super().__init__(error.message)
        self.status, self.error, self.close = status, error, close


# --------------------------------------------------------------------------------------------- router bridge

class RouterBridge:
    """Forwards native request envelopes to the router loop and matches the replies by id.

    Lives on the HTTP event loop: one DEALER (ZeroMQ sockets are not thread-safe, and the loop is one thread)
    connected to the router's inproc ROUTER; frames are ``[client address, msgpack request]``.
    """

    def __init__(self, context: zmq.Context[Any], endpoint: str):
        self._context = zmq.asyncio.Context.shadow(context.underlying)
        self._endpoint = endpoint
        self._sock: zmq.asyncio.Socket | None = None
        self._reader: asyncio.Task[None] | None = None
        self._waiting: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._ids = itertools.count(1)

    async def call(self, envelope: dict[str, Any], peer: str, wait_s: float) -> dict[str, Any]:
        sock = self._socket()
        request_id = next(self._ids)
        future = asyncio.get_running_loop().create_future()
        self._waiting[request_id] = future
        try:
            payload = msgpack.packb({**envelope, "id": request_id}, use_bin_type=True)
        except (OverflowError, UnicodeEncodeError, ValueError, TypeError) as exc:
            raise HttpError(400, BadRequest(f"body cannot be forwarded: {type(exc).__name__}")) from None
        try:
            await sock.send_multipart([peer.encode(), payload])
            return await asyncio.wait_for(future, wait_s)
        except TimeoutError:
            raise HttpError(504, HubTimeout("no reply from the hub in time")) from None
        finally:
            self._waiting.pop(request_id, None)

    def fail_all(self, error: HubError) -> None:
        for future in list(self._waiting.values()):
            if not future.done():
                future.set_result({"ok": False, "error": error.to_wire()})

    def close(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
        if self._sock is not None:
            self._sock.close(linger=0)

    def _socket(self) -> zmq.asyncio.Socket:
        if self._sock is None:
            self._sock = self._context.socket(zmq.DEALER)
            self._sock.setsockopt(zmq.LINGER, 0)
            self._sock.connect(self._endpoint)
            self._reader = asyncio.get_running_loop().create_task(self._read_replies())
        return self._sock

    async def _read_replies(self) -> None:
        assert self._sock is not None
        while True:
            frames = await self._sock.recv_multipart()
            try:
                reply = msgpack.unpackb(frames[-1], raw=False, strict_map_key=False)
            except Exception as exc:
                log.error("http_bridge_bad_reply", error=repr(exc))
                continue
            future = self._waiting.get(reply.get("id", 0)) if isinstance(reply, dict) else None
            if future is not None and not future.done():
                future.set_result(reply)


# --------------------------------------------------------------------------------------------- ASGI app

class HubHttpApp:
    """The ASGI application: health, metrics and the OpenAPI document here; everything else to the router."""

    def __init__(self, bridge: RouterBridge, metrics: HubMetrics, health: Callable[[], dict[str, Any]],
                 openapi: Callable[[], dict[str, Any]], limits: HttpLimits):
        self.bridge = bridge
        self.metrics = metrics
        self.health = health
        self.openapi = openapi
        self.limits = limits
        self._openapi_body: bytes | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        try:
            status, body, content_type, headers = await self._serve(scope, receive)
        except HttpError as err:
            status, body, content_type = err.status, _json({"error": err.error.to_wire()}), "application/json"
            headers = [(b"connection", b"close")] if err.close else []
        except Exception as exc:  # the edge: never a traceback to the client
            log.error("http_failed", error=repr(exc))
            status, body = 500, _json({"error": Internal("internal error; see the hub log").to_wire()})
            content_type, headers = "application/json", []
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", content_type.encode()),
                                (b"content-length", str(len(body)).encode()), *headers]})
        await send({"type": "http.response.body", "body": body})

    async def _serve(self, scope: Scope, receive: Receive) -> tuple[int, bytes, str, list[tuple[bytes, bytes]]]:
        method, path = scope["method"], scope["path"]
        head = len(scope.get("raw_path") or b"") + len(scope.get("query_string") or b"") + sum(
            len(name) + len(value) + 4 for name, value in scope.get("headers", []))
        if head > self.limits.max_header_bytes:   # h11 only bounds a head that arrives in pieces
            raise HttpError(431, BadRequest(f"request head exceeds {self.limits.max_header_bytes} bytes"),
                            close=True)
        if method == "GET" and path == "/metrics":
            return 200, await asyncio.to_thread(self.metrics.render), "text/plain; version=0.0.4; charset=utf-8", []
        if method == "GET" and path == "/health":
            report = await asyncio.to_thread(self.health)
            return 503 if report["status"] == "down" else 200, _json(report), "application/json", []
        if method == "GET" and path == "/openapi.json":
            if self._openapi_body is None:
                self._openapi_body = _json(self.openapi())
            return 200, self._openapi_body, "application/json", []
        return await self._forward(scope, receive)

    async def _forward(self, scope: Scope, receive: Receive) -> tuple[int, bytes, str, list[tuple[bytes, bytes]]]:
        headers = _headers(scope)
        deadline_ms = _deadline_ms(headers.get("x-deadline-ms"))
        body = _parse_json(await self._read_body(headers, receive))
        raw_path = (scope.get("raw_path") or scope["path"].encode()).decode("latin-1")
        query = scope.get("query_string") or b""
        envelope: dict[str, Any] = {"v": 1, "method": scope["method"],
                                    "path": raw_path + ("?" + query.decode("latin-1") if query else "")}
        if body is not None:
            envelope["body"] = body
        token = _bearer(headers.get("authorization", ""))
        if token:
            envelope["token"] = token
        if deadline_ms:
            envelope["deadline_ms"] = deadline_ms
        wait_s = (deadline_ms / 1000 if deadline_ms else self.limits.default_deadline_s) + self.limits.reply_margin_s
        client = scope.get("client") or ("", 0)
        reply = await self.bridge.call(envelope, client[0] or "", wait_s)
        if reply.get("ok"):
            return 200, _json(reply.get("result")), "application/json", []
        error = reply.get("error") or {}
        extra = []
        if error.get("retry_after_ms") is not None:
            extra.append((b"retry-after", str(max(1, -(-int(error["retry_after_ms"]) // 1000))).encode()))
        status = HTTP_STATUS.get(str(error.get("code")), 500)
        return status, _json({"error": error}), "application/json", extra

    async def _read_body(self, headers: dict[str, str], receive: Receive) -> bytes:
        limit = self.limits.max_body_bytes
        declared = headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise HttpError(413, TooLarge(f"body of {declared} bytes exceeds {limit}"), close=True)
        chunks: list[bytes] = []
        size = 0
        loop = asyncio.get_running_loop()
        until = loop.time() + self.limits.request_timeout_s
        while True:
            try:
                message = await asyncio.wait_for(receive(), max(0.0, until - loop.time()))
            except TimeoutError:
                raise HttpError(408, BadRequest("request body not received in time"), close=True) from None
            if message["type"] == "http.disconnect":
                raise HttpError(400, BadRequest("client disconnected"), close=True)
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise HttpError(413, TooLarge(f"body exceeds {limit} bytes"), close=True)
            chunks.append(chunk)
            if not message.get("more_body"):
                return b"".join(chunks)


def _parse_json(raw: bytes) -> Any:
    if not raw:
        return None
    try:
        body = json.loads(raw.decode("utf-8"), parse_int=_int64)
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise HttpError(400, BadRequest("body must be JSON (UTF-8)")) from None
    if nesting_exceeds(body, MAX_NESTING):
        raise HttpError(400, BadRequest(f"body nested deeper than {MAX_NESTING} levels"))
    return body


def _int64(text: str) -> int:
    value = int(text)
    if not -2 ** 63 <= value < 2 ** 64:
        raise HttpError(400, BadRequest("integer out of the 64-bit range in body"))
    return value


def _deadline_ms(raw: str | None) -> int | None:
    if raw is None:
        return None
    if not raw.isdigit() or not 0 < int(raw) <= MAX_DEADLINE_MS:
        raise HttpError(400, BadRequest(f"X-Deadline-Ms must be an integer between 1 and {MAX_DEADLINE_MS}"))
    return int(raw)


def _headers(scope: Scope) -> dict[str, str]:
    return {name.decode("latin-1").lower(): value.decode("latin-1") for name, value in scope.get("headers", [])}


def _bearer(header: str) -> str | None:
    if header.lower().startswith("bearer "):
        return header[7:].strip()
    return None


def _json(obj: Any) -> bytes:
    return json.dumps(obj, default=str).encode()


# --------------------------------------------------------------------------------------------- server

class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol plus a deadline for each request head (uvicorn has none: a client that opens a
    connection and never finishes its headers would hold it for ever)."""

    head_timeout_s = 10.0
    _head_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
        super().connection_lost(exc)

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._arm_head_timer()

    def _arm_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
        if not self.transport.is_closing():
            self._head_timer = self.loop.call_later(self.head_timeout_s, self._head_deadline, self.cycle)

    def _head_deadline(self, cycle_when_armed: Any) -> None:
        if self.cycle is cycle_when_armed and not self.transport.is_closing():
            self.transport.close()   # no complete request head since the timer was armed


class HttpFrontend:
    """uvicorn on its own thread and event loop; ``start`` binds (errors raise here), ``stop`` ends it."""

    def __init__(self, host: str, port: int, context: zmq.Context[Any], router_endpoint: str, metrics: HubMetrics,
                 health: Callable[[], dict[str, Any]], openapi: Callable[[], dict[str, Any]], limits: HttpLimits):
        self.limits = limits
        self.bridge = RouterBridge(context, router_endpoint)
        app = HubHttpApp(self.bridge, metrics, health, openapi, limits)
        protocol = type("HubH11Protocol", (GuardedH11Protocol,), {"head_timeout_s": limits.request_timeout_s})
        self.config = uvicorn.Config(
            app, http=protocol, lifespan="off", log_config=None, access_log=False, server_header=False,
            backlog=limits.backlog, limit_concurrency=limits.max_connections,
            timeout_keep_alive=max(1, round(limits.idle_timeout_s)),
            h11_max_incomplete_event_size=limits.max_header_bytes, timeout_graceful_shutdown=2)
        self.server = uvicorn.Server(self.config)
        # proto IPPROTO_TCP: asyncio sets TCP_NODELAY only on such sockets; without it a keep-alive reply
        # (head and body written separately) waits ~40 ms for the client's delayed ACK (Nagle)
        self._sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM,
                                   socket.IPPROTO_TCP)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._host, self._port = host, port
        self._thread = threading.Thread(target=self._run, name="http", daemon=True)
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def port(self) -> int:
        return int(self._sock.getsockname()[1])

    def start(self) -> None:
        self._sock.bind((self._host, self._port))
        self._sock.listen(self.limits.backlog)
        self._thread.start()

    def stop(self) -> None:
        if self._loop is not None and self._loop.is_running():
            self._loop.call_soon_threadsafe(self.bridge.fail_all, Unavailable("hub is stopping"))
        self.server.should_exit = True
        self._thread.join(10)
        self._sock.close()

    def _run(self) -> None:
        async def serve() -> None:
            self._loop = asyncio.get_running_loop()
            try:
                await self.server.serve(sockets=[self._sock])
            finally:
                self.bridge.close()

        asyncio.run(serve())
