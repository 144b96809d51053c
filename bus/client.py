"""Native client for the hubs (used by hubctl, the model suite's calls to MemoryHub, and tests).

DEALER socket with an empty delimiter frame, so the hub sees exactly what a REQ client would send, but
requests can be pipelined and streamed replies read. Errors come back as typed ``HubError`` subclasses.
"""
from __future__ import annotations

import itertools
import os
import time
from dataclasses import dataclass
from typing import Any
from collections.abc import Iterator, Mapping

import zmq

from bus.errors import HubError, Timeout, error_from_wire
from bus.wire import MSGPACK, decode, encode


@dataclass(frozen=True)
class NamedHub:
    """A hub on this host that a client may name instead of giving an endpoint (ports before PORT_OFFSET).

    The bus knows no hub: the hub-aware layer (``agents/hubs.py``) hands these to ``resolve_endpoint`` and hubctl.
    """

    name: str              # the hub's name (its module under agents/, its settings profile's name)
    native_port: int
    http_port: int
    events_port: int
    data_dir: str          # holds the hub's jwt.secret (hubctl mints tokens from it)


def resolve_endpoint(name: str | None, hubs: Mapping[str, NamedHub] | None = None,
                     env: Mapping[str, str] | None = None) -> str:
    """A hub named in ``hubs`` (on 127.0.0.1, shifted by PORT_OFFSET), `host:port`, `:port`, or `tcp://...`."""
    hubs = hubs or {}
    if not name:
        raise ValueError(f"an endpoint is needed: {_endpoint_forms(hubs)}")
    if name in hubs:
        return local_endpoint(hubs[name].native_port, os.environ if env is None else env)
    if "://" in name:
        return name
    host, _, port = name.rpartition(":")
    if not port.isdigit():
        raise ValueError(f"cannot read endpoint {name!r}: use {_endpoint_forms(hubs)}")
    return f"tcp://{host or '127.0.0.1'}:{port}"


def local_endpoint(port: int, env: Mapping[str, str]) -> str:
    """``port`` on 127.0.0.1 shifted by PORT_OFFSET (read here: importing bus.config, and yaml, would slow
    every hubctl command)."""
    return f"tcp://127.0.0.1:{port + int(env.get('PORT_OFFSET', '0') or 0)}"


def _endpoint_forms(hubs: Mapping[str, NamedHub]) -> str:
    return ", ".join([*hubs, "host:port", "tcp://host:port"])


class HubClient:
    def __init__(self, endpoint: str, token: str | None = None, timeout: float = 10.0, encoding: str = MSGPACK,
                 curve_server_key: str | None = None, context: zmq.Context[Any] | None = None):
        self.endpoint = endpoint
        self.token = token
        self.timeout = timeout
        self.encoding = encoding
        self._curve_server_key = curve_server_key
        self._context = context or zmq.Context.instance()
        self._ids = itertools.count(1)
        self._sock: zmq.Socket[Any] | None = None

    def __enter__(self) -> HubClient:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close(linger=0)
            self._sock = None

    def _socket(self) -> zmq.Socket[Any]:
        if self._sock is None:
            sock = self._context.socket(zmq.DEALER)
            sock.setsockopt(zmq.LINGER, 0)
            if self._curve_server_key:
                public, secret = zmq.curve_keypair()
                sock.curve_serverkey = self._curve_server_key.encode()
                sock.curve_publickey, sock.curve_secretkey = public, secret
            sock.connect(self.endpoint)
            self._sock = sock
        return self._sock

    def request(self, payload: dict[str, Any], timeout: float | None = None) -> dict[str, Any]:
        """Send one envelope (``id`` and ``token`` filled in) and return the raw reply map."""
        payload = dict(payload)
        payload.setdefault("v", 1)
        payload.setdefault("id", next(self._ids))
        if self.token and "token" not in payload:
            payload["token"] = self.token
        sock = self._socket()
        sock.send_multipart([b"", encode(payload, self.encoding)])
        return self._receive(payload["id"], timeout)

    def _receive(self, request_id: Any, timeout: float | None) -> dict[str, Any]:
        sock = self._socket()
        until = time.monotonic() + (self.timeout if timeout is None else timeout)
        while True:
            remaining = until - time.monotonic()
            if remaining <= 0 or not sock.poll(int(remaining * 1000), zmq.POLLIN):
                self.close()  # a late reply must not be read as the answer to the next request
                raise Timeout(f"no reply from {self.endpoint} within {self.timeout if timeout is None else timeout}s")
            frames = sock.recv_multipart()
            reply, _ = decode(frames[-1])
            if isinstance(reply, dict) and reply.get("id") == request_id:
                return reply

    def call(self, agent: str, action: str, args: dict[str, Any] | None = None, *, deadline_ms: int | None = None,
             timeout: float | None = None) -> Any:
        payload: dict[str, Any] = {"agent": agent, "action": action, "args": args or {}}
        if deadline_ms:
            payload["deadline_ms"] = deadline_ms
        return _result(self.request(payload, timeout))

    def route(self, method: str, path: str, body: Any = None, timeout: float | None = None) -> Any:
        payload: dict[str, Any] = {"method": method, "path": path}
        if body is not None:
            payload["body"] = body
        return _result(self.request(payload, timeout))

    def stream(self, agent: str, action: str, args: dict[str, Any] | None = None,
               timeout: float | None = None) -> Iterator[Any]:
        """Yield streamed chunks, then the final result (as the last item)."""
        request_id = next(self._ids)
        payload = {"v": 1, "id": request_id, "agent": agent, "action": action, "args": args or {}, "stream": True}
        if self.token:
            payload["token"] = self.token
        self._socket().send_multipart([b"", encode(payload, self.encoding)])
        while True:
            reply = self._receive(request_id, timeout)
            if not reply.get("ok"):
                raise error_from_wire(reply.get("error", {}))
            if reply.get("stream") and not reply.get("final"):
                yield reply.get("chunk")
                continue
            yield reply.get("result")
            return

    def ping(self, timeout: float | None = None) -> float:
        started = time.perf_counter()
        self.call("hub", "ping", timeout=timeout)
        return time.perf_counter() - started


def _result(reply: dict[str, Any]) -> Any:
    if reply.get("ok"):
        return reply.get("result")
    raise error_from_wire(reply.get("error") or {"code": "internal", "message": "malformed reply"})


__all__ = ["HubClient", "HubError", "NamedHub", "resolve_endpoint"]
