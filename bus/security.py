"""Socket-level security: the legacy peer allow-list and CURVE on the native port, via one ZAP handler.

Legacy ports carry no tokens (their clients are unchanged), so they are protected by bind address and,
when ``legacy.allow`` lists addresses, by ZAP: connections from other peers are refused at the handshake
and counted in ``hub_refused_peers_total``. The native port can require CURVE encryption
(``curve.enabled``) with an optional list of allowed client public keys (z85).
"""
from __future__ import annotations

import threading
from collections.abc import Iterable
from typing import Any

import zmq
from zmq.utils import z85

from bus.config import ConfigError, CurveSection
from bus.log import get_logger
from bus.metrics import HubMetrics

log = get_logger("bus.security")
ZAP_ENDPOINT = "inproc://zeromq.zap.01"
LEGACY_DOMAIN, NATIVE_DOMAIN = b"legacy", b"native"


class SocketSecurity:
    def __init__(self, context: zmq.Context[Any], legacy_allow: Iterable[str], curve: CurveSection,
                 metrics: HubMetrics):
        self.context = context
        self.legacy_allow = {str(a) for a in legacy_allow}
        self.curve = curve
        self.metrics = metrics
        self.allowed_keys = {key.encode() for key in curve.allowed_client_keys}
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        if self.legacy_allow or curve.enabled:
            self._start()

    def secure_legacy(self, sock: zmq.Socket[Any]) -> None:
        if self.legacy_allow:
            sock.zap_domain = LEGACY_DOMAIN

    def secure_events(self, sock: zmq.Socket[Any]) -> None:
        """CURVE on the PUB socket (``events.curve``): the same server keys and client allow-list."""
        self._curve_server(sock)
        if self._thread is None:
            self._start()

    def secure_native(self, sock: zmq.Socket[Any]) -> None:
        if not self.curve.enabled:
            return
        self._curve_server(sock)

    def _curve_server(self, sock: zmq.Socket[Any]) -> None:
        secret, public = self.curve.server_secret_key, self.curve.server_public_key
        if not secret or not public:
            raise ConfigError("CURVE (curve.enabled or events.curve) needs curve.server_secret_key and "
                              "curve.server_public_key (generate with: hubctl curve-keys)", "curve")
        sock.curve_server = True
        sock.curve_secretkey = secret.encode()
        sock.curve_publickey = public.encode()
        sock.zap_domain = NATIVE_DOMAIN

    def _start(self) -> None:
        ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, args=(ready,), name="zap", daemon=True)
        self._thread.start()
        ready.wait(5)

    def _serve(self, ready: threading.Event) -> None:
        sock = self.context.socket(zmq.REP)
        sock.setsockopt(zmq.LINGER, 0)
        sock.bind(ZAP_ENDPOINT)
        ready.set()
        poller = zmq.Poller()
        poller.register(sock, zmq.POLLIN)
        try:
            while not self._stop.is_set():
                if not poller.poll(200):
                    continue
                msg = sock.recv_multipart()
                sock.send_multipart(self._answer(msg))
        finally:
            sock.close()

    def _answer(self, msg: list[bytes]) -> list[bytes]:
        if len(msg) < 6:
            return [b"1.0", msg[1] if len(msg) > 1 else b"", b"400", b"bad ZAP request", b"", b""]
        version, request_id, domain, address, _identity, mechanism = msg[:6]
        credentials = msg[6:]
        ok, reason = self._decide(domain, address.decode("utf-8", "replace"), mechanism, credentials)
        if not ok:
            self.metrics.refused_peers.labels(address.decode("utf-8", "replace")).inc()
            log.warning("peer_refused", domain=domain.decode(), address=address.decode("utf-8", "replace"),
                        reason=reason)
        return [version, request_id, b"200" if ok else b"400", reason.encode(), b"peer" if ok else b"", b""]

    def _decide(self, domain: bytes, address: str, mechanism: bytes, credentials: list[bytes]) -> tuple[bool, str]:
        if domain == LEGACY_DOMAIN:
            if self.legacy_allow and address not in self.legacy_allow:
                return False, "address not allowed"
            return True, "OK"
        if domain == NATIVE_DOMAIN and mechanism == b"CURVE":
            key = z85.encode(credentials[0]) if credentials else b""
            if self.allowed_keys and key not in self.allowed_keys:
                return False, "client key not allowed"
            return True, "OK"
        return True, "OK"

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(2)
