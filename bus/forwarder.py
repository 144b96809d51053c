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
The bus knows no hub's ports: ``ForwarderSettings`` relays none by default, and the hub-aware ``hubctl forward``
(``agents/hubctl.py``) passes a defaults layer with its port list (``agents/hubs.py``) to ``run_from_args``.
A port that cannot be bound is logged and skipped (a legacy agent still running there), like the hubs do.
"""
from __future__ import annotations

import argparse
import os
import sys
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import FrameType
from typing import Any

import zmq

from bus.config import ConfigError, CurveSection, LoggingSection, port_offset
from bus.log import configure_logging, get_logger
from bus.metrics import HubMetrics
from bus.security import SocketSecurity
from bus.settings import SettingError, load, setting

log = get_logger("bus.forwarder")



@dataclass(frozen=True)
class ForwarderSettings:
    """Section ``forwarder``."""

    remote_host: str = "127.0.0.1"          # the remote hub's host
    remote_port_offset: int = setting(0, minimum=-65535, maximum=65535)   # PORT_OFFSET of the remote host
    bind_host: str = "127.0.0.1"            # the legacy agents bound *; a host profile sets 0.0.0.0
    ports: tuple[int, ...] = ()             # local legacy ports to relay (the hub-aware layer's defaults)
    remote_ports: dict[str, int] = field(default_factory=dict)   # {"<local port>": <remote port>} where they differ
    allow: tuple[str, ...] = ()             # peer addresses allowed on the local ports (empty: any)
    max_frame_bytes: int = setting(16 * 1024 * 1024, minimum=1024)
    hwm: int = setting(10000, minimum=1)

    def __post_init__(self) -> None:
        for port in (*self.ports, *self.remote_ports.values()):
            if not 0 < port <= 65535:
                raise SettingError("ports", f"ports must be in 1..65535, got {port}")


@dataclass(frozen=True)
class RelaySettings:
    """The relay's settings file (``config/mainpc/hub_forwarder.yaml``)."""

    forwarder: ForwarderSettings = field(default_factory=ForwarderSettings)
    logging: LoggingSection = field(default_factory=LoggingSection)


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
    front: zmq.Socket[Any]
    back: zmq.Socket[Any]
    requests: int = 0
    replies: int = 0


class Forwarder:
    def __init__(self, settings: ForwarderSettings, offset: int = 0, context: zmq.Context[Any] | None = None):
        self.settings = settings
        self.offset = offset
        self.context = context or zmq.Context.instance()
        self.relays: list[Relay] = []
        self.failed: list[int] = []
        self._stop = threading.Event()
        self._security = SocketSecurity(self.context, settings.allow, CurveSection(), HubMetrics("forwarder"))

    def remote_port(self, port: int) -> int:
        return self.settings.remote_ports.get(str(port), port) + self.settings.remote_port_offset

    def bind(self) -> list[Relay]:
        """Bind every local port (skipping those in use) and connect its DEALER to the remote port."""
        for port in self.settings.ports:
            local = port + self.offset
            front = self._socket(zmq.ROUTER)
            self._security.secure_legacy(front)
            try:
                front.bind(f"tcp://{self.settings.bind_host}:{local}")
            except zmq.ZMQError as exc:
                front.close(linger=0)
                self.failed.append(local)
                log.error("forward_bind_failed", port=local, error=str(exc))
                continue
            back = self._socket(zmq.DEALER)
            remote = f"tcp://{self.settings.remote_host}:{self.remote_port(port)}"
            back.connect(remote)
            self.relays.append(Relay(local, remote, front, back))
        log.info("forwarder_bound", relays={r.local_port: r.remote_endpoint for r in self.relays},
                 failed=self.failed)
        return self.relays

    def _socket(self, kind: int) -> zmq.Socket[Any]:
        sock = self.context.socket(kind)
        sock.setsockopt(zmq.LINGER, 500)
        sock.setsockopt(zmq.SNDHWM, self.settings.hwm)
        sock.setsockopt(zmq.RCVHWM, self.settings.hwm)
        sock.setsockopt(zmq.MAXMSGSIZE, self.settings.max_frame_bytes + 4096)
        return sock

    def serve_forever(self, poll_ms: int = 200) -> None:
        """Relay until ``request_stop()``; one thread owns every socket."""
        poller = zmq.Poller()
        routes: dict[zmq.Socket[Any], tuple[Relay, bool]] = {}
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

    def status(self) -> dict[str, Any]:
        return {"relays": {r.local_port: {"remote": r.remote_endpoint, "requests": r.requests,
                                          "replies": r.replies} for r in self.relays},
                "failed": list(self.failed)}


def load_relay_settings(defaults: Mapping[str, Any], path: str | None, env: Mapping[str, str],
                        overrides: Mapping[str, Any] | None = None) -> RelaySettings:
    """``defaults`` (a raw layer, e.g. the caller's port list), the YAML file, the environment, ``overrides``."""
    return load(RelaySettings, [defaults], path, env=env, env_map=ENV_MAP, overrides=overrides)


def run_from_args(args: argparse.Namespace, defaults: Mapping[str, Any]) -> int:
    """``hubctl forward`` (arguments: ``bus.cli.forward_arguments``): settings from ``defaults`` (a raw layer
    with the caller's port list), ``--config``, the environment and the flags; then ``run``. Exit 2 on a
    configuration error."""
    overrides: dict[str, Any] = {}
    for key, value in (("remote_host", args.remote_host), ("remote_port_offset", args.remote_offset),
                       ("bind_host", args.bind_host)):
        if value is not None:
            overrides[key] = value
    if args.ports:
        overrides["ports"] = [int(p) for p in args.ports.split(",") if p.strip()]
    try:
        settings = load_relay_settings(defaults, args.config, os.environ,
                                       {"forwarder": overrides} if overrides else None)
        offset = port_offset(os.environ)
    except ConfigError as exc:
        print(f"hub-forwarder: configuration error: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings.logging.level, settings.logging.json)
    return run(settings.forwarder, offset, os.environ)


def run(settings: ForwarderSettings, offset: int, env: Mapping[str, str]) -> int:
    """Bind, notify systemd, relay until SIGTERM/SIGINT; exit code 1 when no port could be bound."""
    import signal

    from bus.sdnotify import SystemdNotifier

    forwarder = Forwarder(settings, offset)
    relays = forwarder.bind()
    if not relays:
        log.error("forwarder_no_ports", failed=forwarder.failed)
        forwarder.close()
        return 1
    notifier = SystemdNotifier(dict(env))

    def stop(signum: int, _frame: FrameType | None) -> None:
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
