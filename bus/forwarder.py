"""Relay this host's legacy REQ/REP ports to the same legacy ports of a hub on another host.

Legacy clients connect to ``localhost``; when the agent they talk to now lives in a hub elsewhere, this
relay binds those ports here and passes every request to the same legacy port of that hub:

    REQ client ──> ROUTER :port+PORT_OFFSET (here)  ==frames==>  DEALER ──> hub :port+remote offset

The front ROUTER prefixes the client's routing identity; the DEALER sends the frames unchanged, the hub's
legacy ROUTER prefixes the DEALER's identity and replies with the whole envelope, so the reply comes back
to the DEALER as ``[client identity, b"", reply]`` and the ROUTER routes it to the client: REQ/REP
envelopes are preserved end to end, and many clients share one connection to the remote host.

Settings (section ``forwarder``; YAML via ``--config``, env ``HUB_FORWARD_REMOTE_HOST``,
``HUB_FORWARD_REMOTE_OFFSET``): ``remote_host``, ``remote_port_offset`` (the remote PORT_OFFSET), ``bind_host``,
``ports`` (local ports, shifted by this host's PORT_OFFSET), ``remote_ports`` (``{"local": remote}`` where
the remote port differs), ``allow`` (peer allow-list, as ``legacy.allow``), ``max_frame_bytes``.
The bus knows no hub's ports: ``DEFAULTS`` relays none, and the hub-aware ``hubctl forward``
(``agents/hubctl.py``) passes defaults with its port list (``agents/hubs.py``) to ``run_from_args``.
A port that cannot be bound is logged and skipped (a legacy agent still running there), like the hubs do.
"""
from __future__ import annotations

import argparse
import os
import threading
from dataclasses import dataclass
from typing import Any, Mapping

import zmq

from bus.config import load_settings, port_offset
from bus.log import configure_logging, get_logger
from bus.metrics import HubMetrics
from bus.security import SocketSecurity

log = get_logger("bus.forwarder")

DEFAULTS: dict[str, Any] = {
    "forwarder": {
        "remote_host": "127.0.0.1",          # the remote hub's host
        "remote_port_offset": 0,             # PORT_OFFSET of the remote hub's host
        "bind_host": "127.0.0.1",            # the legacy agents bound *; a host profile sets 0.0.0.0
        "ports": [],                         # local legacy ports to relay (the hub-aware layer's defaults)
        "remote_ports": {},                  # {"<local port>": <remote port>} where they differ
        "allow": [],                         # peer addresses allowed on the local ports (empty: any)
        "max_frame_bytes": 16 * 1024 * 1024,
        "hwm": 10000,
    },
    "logging": {"level": "info", "json": True},
}
ENV_MAP: dict[str, tuple[str, ...]] = {
    "HUB_FORWARD_REMOTE_HOST": ("forwarder", "remote_host"),
    "HUB_FORWARD_REMOTE_OFFSET": ("forwarder", "remote_port_offset"),
    "HUB_LOG_LEVEL": ("logging", "level"),
}


@dataclass
class Relay:
    """One local port and its connection to the remote legacy port."""

    local_port: int
    remote_endpoint: str
    front: zmq.Socket
    back: zmq.Socket
    requests: int = 0
    replies: int = 0


class Forwarder:
    def __init__(self, settings: Mapping[str, Any], offset: int = 0, context: zmq.Context | None = None):
        self.settings = dict(settings)
        self.offset = offset
        self.context = context or zmq.Context.instance()
        self.relays: list[Relay] = []
        self.failed: list[int] = []
        self._stop = threading.Event()
        self._security = SocketSecurity(self.context, list(self.settings.get("allow") or []),
                                        {"enabled": False}, HubMetrics("forwarder"))

    def remote_port(self, port: int) -> int:
        remote = dict(self.settings.get("remote_ports") or {})
        mapped = remote.get(str(port), remote.get(port, port))
        return int(mapped) + int(self.settings["remote_port_offset"])

    def bind(self) -> list[Relay]:
        """Bind every local port (skipping those in use) and connect its DEALER to the remote port."""
        for port in [int(p) for p in self.settings["ports"]]:
            local = port + self.offset
            front = self._socket(zmq.ROUTER)
            self._security.secure_legacy(front)
            try:
                front.bind(f"tcp://{self.settings['bind_host']}:{local}")
            except zmq.ZMQError as exc:
                front.close(linger=0)
                self.failed.append(local)
                log.error("forward_bind_failed", port=local, error=str(exc))
                continue
            back = self._socket(zmq.DEALER)
            remote = f"tcp://{self.settings['remote_host']}:{self.remote_port(port)}"
            back.connect(remote)
            self.relays.append(Relay(local, remote, front, back))
        log.info("forwarder_bound", relays={r.local_port: r.remote_endpoint for r in self.relays},
                 failed=self.failed)
        return self.relays

    def _socket(self, kind: int) -> zmq.Socket:
        sock = self.context.socket(kind)
        sock.setsockopt(zmq.LINGER, 500)
        sock.setsockopt(zmq.SNDHWM, int(self.settings["hwm"]))
        sock.setsockopt(zmq.RCVHWM, int(self.settings["hwm"]))
        sock.setsockopt(zmq.MAXMSGSIZE, int(self.settings["max_frame_bytes"]) + 4096)
        return sock

    def serve_forever(self, poll_ms: int = 200) -> None:
        """Relay until ``request_stop()``; one thread owns every socket."""
        poller = zmq.Poller()
        routes: dict[zmq.Socket, tuple[Relay, bool]] = {}
        for relay in self.relays:
            poller.register(relay.front, zmq.POLLIN)
            poller.register(relay.back, zmq.POLLIN)
            routes[relay.front] = (relay, True)
            routes[relay.back] = (relay, False)
        while not self._stop.is_set():
            for sock, _ in poller.poll(poll_ms):
                relay, inbound = routes[sock]
                self._pump(relay, inbound)

    def _pump(self, relay: Relay, inbound: bool) -> None:
        source, target = (relay.front, relay.back) if inbound else (relay.back, relay.front)
        for _ in range(256):                 # bounded batch, then let the other sockets in
            try:
                frames = source.recv_multipart(zmq.NOBLOCK, copy=False)
            except zmq.Again:
                return
            try:
                target.send_multipart(frames, zmq.NOBLOCK, copy=False)
            except zmq.Again:
                log.warning("forward_dropped", port=relay.local_port, direction="in" if inbound else "out")
                continue
            if inbound:
                relay.requests += 1
            else:
                relay.replies += 1

    def request_stop(self) -> None:
        self._stop.set()

    def close(self) -> None:
        for relay in self.relays:
            relay.front.close()
            relay.back.close()
        self.relays.clear()
        self._security.stop()

    def status(self) -> dict:
        return {"relays": {r.local_port: {"remote": r.remote_endpoint, "requests": r.requests,
                                          "replies": r.replies} for r in self.relays},
                "failed": list(self.failed)}


def run_from_args(args: argparse.Namespace, defaults: Mapping[str, Any]) -> int:
    """``hubctl forward`` (arguments: ``bus.cli.forward_arguments``): settings from ``defaults`` (the caller's
    port list), ``--config``, the environment and the flags; then ``run``."""
    overrides: dict[str, Any] = {}
    for key, value in (("remote_host", args.remote_host), ("remote_port_offset", args.remote_offset),
                       ("bind_host", args.bind_host)):
        if value is not None:
            overrides[key] = value
    if args.ports:
        overrides["ports"] = [int(p) for p in args.ports.split(",") if p.strip()]
    settings = load_settings(defaults, args.config, env=os.environ, env_map=ENV_MAP,
                             overrides={"forwarder": overrides} if overrides else None)
    configure_logging(settings["logging"]["level"], settings["logging"]["json"])
    return run(settings, port_offset(os.environ), os.environ)


def run(settings: Mapping[str, Any], offset: int, env: Mapping[str, str]) -> int:
    """Bind, notify systemd, relay until SIGTERM/SIGINT; exit code 1 when no port could be bound."""
    import signal

    from bus.sdnotify import SystemdNotifier

    forwarder = Forwarder(settings["forwarder"], offset)
    relays = forwarder.bind()
    if not relays:
        log.error("forwarder_no_ports", failed=forwarder.failed)
        forwarder.close()
        return 1
    notifier = SystemdNotifier(dict(env))

    def stop(signum: int, _frame: Any) -> None:
        log.info("signal_received", signal=signal.Signals(signum).name)
        forwarder.request_stop()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    notifier.notify(f"READY=1\nSTATUS=relaying {len(relays)} ports")
    notifier.start_watchdog(lambda: True)
    try:
        forwarder.serve_forever()
    finally:
        notifier.notify("STOPPING=1")
        notifier.stop()
        forwarder.close()
    log.info("forwarder_stopped", **forwarder.status())
    return 0
