"""HTTP on the hub's HTTP port: GET /health, GET /metrics, and the route table as REST (Bearer JWT).

A small stdlib ThreadingHTTPServer: operators' curl, Prometheus and systemd-style probes need nothing more.
Replies are JSON: the native reply's ``result`` with 200, or ``{"error": {...}}`` with the mapped status.
"""
from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable
from urllib.parse import parse_qsl, urlsplit

from bus.dispatch import Dispatcher
from bus.errors import HTTP_STATUS, BadRequest, HubError, TooLarge
from bus.log import get_logger
from bus.metrics import HubMetrics
from bus.wire import JSON, Request

log = get_logger("bus.http")


class HttpFrontend:
    def __init__(self, host: str, port: int, dispatcher: Dispatcher, metrics: HubMetrics,
                 health: Callable[[], dict], max_body_bytes: int):
        frontend = self
        self.dispatcher = dispatcher
        self.metrics = metrics
        self.health = health
        self.max_body_bytes = max_body_bytes

        class RequestHandler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            server_version = "voice-hubs"

            def log_message(self, fmt: str, *args) -> None:  # route through structlog at debug
                log.debug("http", message=fmt % args)

            def do_GET(self) -> None:
                frontend.handle(self, "GET")

            def do_POST(self) -> None:
                frontend.handle(self, "POST")

            def do_PUT(self) -> None:
                frontend.handle(self, "PUT")

            def do_DELETE(self) -> None:
                frontend.handle(self, "DELETE")

        self.server = ThreadingHTTPServer((host, port), RequestHandler)
        self.server.daemon_threads = True
        self._thread = threading.Thread(target=self.server.serve_forever, name="http", daemon=True)

    @property
    def port(self) -> int:
        return self.server.server_address[1]

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def handle(self, http: BaseHTTPRequestHandler, method: str) -> None:
        url = urlsplit(http.path)
        try:
            if method == "GET" and url.path == "/metrics":
                self._send(http, 200, self.metrics.render(), "text/plain; version=0.0.4; charset=utf-8")
                return
            if method == "GET" and url.path == "/health":
                report = self.health()
                self._send_json(http, 503 if report["status"] == "down" else 200, report)
                return
            body = self._read_body(http)
            token = _bearer(http.headers.get("Authorization", ""))
            req = Request(encoding=JSON, id=None, method=method, path=url.path, body=body, token=token)
            call = self.dispatcher.resolve(req, "http", peer=http.client_address[0], query=dict(parse_qsl(url.query)))
            reply = self.dispatcher.execute(call)
        except HubError as err:
            reply = {"ok": False, "error": err.to_wire()}
        if reply.get("ok"):
            self._send_json(http, 200, reply.get("result"))
        else:
            error = reply["error"]
            self._send_json(http, HTTP_STATUS.get(error["code"], 500), {"error": error})

    def _read_body(self, http: BaseHTTPRequestHandler):
        length = int(http.headers.get("Content-Length") or 0)
        if length > self.max_body_bytes:
            raise TooLarge(f"body of {length} bytes exceeds {self.max_body_bytes}")
        if not length:
            return None
        raw = http.rfile.read(length)
        try:
            return json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as exc:
            raise BadRequest("body must be JSON") from exc

    def _send_json(self, http: BaseHTTPRequestHandler, status: int, obj) -> None:
        self._send(http, status, json.dumps(obj, default=str).encode(), "application/json")

    @staticmethod
    def _send(http: BaseHTTPRequestHandler, status: int, body: bytes, content_type: str) -> None:
        http.send_response(status)
        http.send_header("Content-Type", content_type)
        http.send_header("Content-Length", str(len(body)))
        http.end_headers()
        http.wfile.write(body)


def _bearer(header: str) -> str | None:
    if header.lower().startswith("bearer "):
        return header[7:].strip()
    return None
