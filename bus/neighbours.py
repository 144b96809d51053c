"""Optional neighbours of a hub: the legacy ErrorBus, SystemDigitalTwin and CoreOrchestrator.

Nothing here is required for a hub to serve. A neighbour that is missing costs a logged warning and
retries with exponential backoff in background threads, never an exception in the caller.

Error reports (legacy-protocol.md §0.2, format 1): ``"ERROR:" + JSON`` strings with ``timestamp`` (epoch
float), ``agent``, ``error_type``, ``message``, ``severity`` (plus ``details`` when given), published on
a socket that *connects* to each configured endpoint (default the legacy collector 7150 and the ErrorBus
9002). The publisher is an XPUB: it sees the collector's subscription, so reports made while a collector
is absent or still connecting are kept (up to ``backlog`` per endpoint) and sent once it has subscribed,
instead of being dropped as a plain PUB would. Reconnects use ZeroMQ's exponential backoff
(``backoff.initial_s`` doubling up to ``backoff.max_s``).

Registration (legacy-protocol.md §0.1): a REQ per attempt to SystemDigitalTwin (7120) and CoreOrchestrator
(7000) sending exactly what BaseAgent sent::

    {"action": "register_agent", "agent_name": NAME, "status": "HEALTHY", "location": LOCATION,
     "registration_data": {"agent_id", "agent_type", "host", "port", "health_check_port", "capabilities",
                           "dependencies", "metadata"},
     "source_agent": NAME, "request_id": uuid4, "timestamp": iso}

once for the hub itself and once per legacy agent it serves (``registration.agents``). A neighbour that
does not answer within ``timeout_s``, or answers ``"status": "error"``, is retried after
``initial_s * factor**n`` seconds (capped at ``max_s``; ``max_attempts`` 0 = forever).
"""
from __future__ import annotations

import json
import queue
import socket
import sys
import threading
import time
import uuid
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import zmq
from zmq.utils.monitor import recv_monitor_message

from bus.error_reports import ErrorReportSettings
from bus.log import get_logger
from bus.settings import setting

log = get_logger("bus.neighbours")



@dataclass(frozen=True)
class ErrorBusSettings:
    enabled: bool = True
    endpoints: tuple[str, ...] = ("tcp://127.0.0.1:7150", "tcp://127.0.0.1:9002")
    backlog: int = setting(1000, minimum=0)    # reports kept per endpoint until a collector subscribes
    reports: ErrorReportSettings = field(default_factory=ErrorReportSettings)   # rate limit, watch interval


@dataclass(frozen=True)
class RegistrationSettings:
    enabled: bool = True
    system_digital_twin: str = "tcp://127.0.0.1:7120"   # empty string: do not register there
    core_orchestrator: str = "tcp://127.0.0.1:7000"
    location: str = ""               # "PC2" | "MainPC"; empty: the host name
    host: str = ""                   # address announced in registration_data; empty: resolved
    agents: bool = True              # also register every legacy agent the hub serves
    timeout_s: float = setting(5.0, minimum=0.001)


@dataclass(frozen=True)
class BackoffSettings:
    initial_s: float = setting(1.0, minimum=0.001)
    factor: float = setting(2.0, minimum=1.0)
    max_s: float = setting(300.0, minimum=0.001)
    max_attempts: int = setting(0, minimum=0)        # 0 = forever


@dataclass(frozen=True)
class NeighboursSettings:
    """Section ``neighbours``."""

    error_bus: ErrorBusSettings = field(default_factory=ErrorBusSettings)
    registration: RegistrationSettings = field(default_factory=RegistrationSettings)
    backoff: BackoffSettings = field(default_factory=BackoffSettings)
    # PORT_OFFSET shifts the neighbours' ports too (7120, 7000, 7150, 9002), as the legacy configs
    # shifted every port of a host; false for neighbours that run unshifted
    apply_port_offset: bool = True


TARGETS = (("SystemDigitalTwin", "system_digital_twin"), ("CoreOrchestrator", "core_orchestrator"))
MONITORED = (zmq.EVENT_CONNECTED | zmq.EVENT_DISCONNECTED | zmq.EVENT_CONNECT_RETRIED
             | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL | zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL)


@dataclass(frozen=True)
class AgentInfo:
    """One registration: the hub itself or a legacy agent it serves."""

    name: str
    port: int
    health_port: int
    agent_type: str
    capabilities: tuple[str, ...] = ()


def agents_from_handlers(handlers: Iterable[Any], hub_title: str, native_port: int, http_port: int,
                         offset: int = 0, capabilities: Mapping[str, str] | None = None) -> list[AgentInfo]:
    """The hub (native port / HTTP port) then each handler with legacy ports, shifted by ``offset``; each
    agent announces the capability the hub gives it in ``capabilities`` (default ``basic_agent``)."""
    capabilities = capabilities or {}
    infos = [AgentInfo(hub_title, native_port + offset, http_port + offset, hub_title, ("hub",))]
    for handler in handlers:
        ports = tuple(getattr(handler, "legacy_ports", ()) or ())
        if not ports:
            continue
        health = tuple(getattr(handler, "legacy_health_ports", ()) or ()) or (ports[0] + 1,)
        infos.append(AgentInfo(handler.name, ports[0] + offset, health[0] + offset, hub_title,
                               (capabilities.get(handler.name, "basic_agent"),)))
    return infos


def shift_endpoint(endpoint: str, offset: int) -> str:
    head, _, port = endpoint.rpartition(":")
    return f"{head}:{int(port) + offset}" if offset and port.isdigit() else endpoint


class Backoff:
    """``initial * factor**n`` capped at ``maximum``; ``max_attempts`` 0 = unlimited."""

    def __init__(self, settings: BackoffSettings):
        self.initial = settings.initial_s
        self.factor = settings.factor
        self.maximum = settings.max_s
        self.max_attempts = settings.max_attempts
        self.attempts = 0

    def next_delay(self) -> float:
        delay = min(self.initial * self.factor ** self.attempts, self.maximum)
        self.attempts += 1
        return delay

    def exhausted(self) -> bool:
        return bool(self.max_attempts) and self.attempts >= self.max_attempts


@dataclass
class _Endpoint:
    address: str
    sock: zmq.Socket[Any]
    monitor: zmq.Socket[Any]
    backlog: deque[bytes] = field(default_factory=deque)
    connected: bool = False
    subscribed: bool = False
    sent: int = 0
    last_retry_ms: int = 0

    def publish(self, payload: bytes) -> None:
        if not self.subscribed:
            self.backlog.append(payload)
            return
        try:
            self.sock.send(payload, zmq.NOBLOCK)
            self.sent += 1
        except zmq.Again:
            log.warning("error_bus_report_dropped", endpoint=self.address, reason="high water mark")

    def flush(self) -> None:
        while self.backlog and self.subscribed:
            self.publish(self.backlog.popleft())


class ErrorBusPublisher:
    """The background thread owning one XPUB per ErrorBus endpoint; ``report`` is thread-safe."""

    def __init__(self, context: zmq.Context[Any], endpoints: list[str], backlog: int, backoff: BackoffSettings):
        self.context = context
        self.addresses = list(endpoints)
        self.backlog_size = int(backlog)
        self.backoff = backoff
        self._queue: queue.Queue[bytes] = queue.Queue()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._endpoints: list[_Endpoint] = []
        self._ready = threading.Event()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="neighbours-errorbus", daemon=True)
        self._thread.start()
        self._ready.wait(5)

    def report(self, payload: bytes) -> None:
        self._queue.put(payload)

    def status(self) -> dict[str, dict[str, Any]]:
        return {ep.address: {"connected": ep.connected, "subscribed": ep.subscribed, "sent": ep.sent,
                             "waiting": len(ep.backlog)} for ep in list(self._endpoints)}

    def stop(self, timeout: float = 2.0) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout)

    def _open(self, address: str) -> _Endpoint:
        sock = self.context.socket(zmq.XPUB)
        sock.setsockopt(zmq.LINGER, 500)
        sock.setsockopt(zmq.SNDHWM, 10000)
        sock.setsockopt(zmq.RECONNECT_IVL, max(1, int(self.backoff.initial_s * 1000)))
        sock.setsockopt(zmq.RECONNECT_IVL_MAX, max(1, int(self.backoff.max_s * 1000)))
        monitor = sock.get_monitor_socket(MONITORED)
        sock.connect(address)
        return _Endpoint(address, sock, monitor, deque(maxlen=max(0, self.backlog_size)))

    def _run(self) -> None:
        poller = zmq.Poller()
        try:
            for address in self.addresses:
                endpoint = self._open(address)
                self._endpoints.append(endpoint)
                poller.register(endpoint.sock, zmq.POLLIN)
                poller.register(endpoint.monitor, zmq.POLLIN)
        finally:
            self._ready.set()
        try:
            while not self._stop.is_set():
                ready = dict(poller.poll(50))
                for endpoint in self._endpoints:
                    if endpoint.sock in ready:
                        self._on_subscription(endpoint, endpoint.sock.recv())
                    if endpoint.monitor in ready:
                        self._on_monitor(endpoint, recv_monitor_message(endpoint.monitor))
                self._drain_queue()
            self._drain_queue()
        finally:
            for endpoint in self._endpoints:
                endpoint.sock.disable_monitor()
                endpoint.monitor.close(linger=0)
                endpoint.sock.close()

    def _drain_queue(self) -> None:
        while True:
            try:
                payload = self._queue.get_nowait()
            except queue.Empty:
                return
            for endpoint in self._endpoints:
                endpoint.publish(payload)

    @staticmethod
    def _on_subscription(endpoint: _Endpoint, message: bytes) -> None:
        if message[:1] == b"\x01":
            if not endpoint.subscribed:
                log.info("error_bus_subscribed", endpoint=endpoint.address, waiting=len(endpoint.backlog))
            endpoint.subscribed = True
            endpoint.flush()

    @staticmethod
    def _on_monitor(endpoint: _Endpoint, event: Mapping[str, Any]) -> None:
        kind, value = event["event"], int(event["value"])
        if kind == zmq.EVENT_CONNECTED:
            endpoint.connected, endpoint.last_retry_ms = True, 0
            log.info("error_bus_connected", endpoint=endpoint.address)
        elif kind == zmq.EVENT_DISCONNECTED:
            endpoint.connected = endpoint.subscribed = False
            log.warning("error_bus_disconnected", endpoint=endpoint.address)
        elif kind == zmq.EVENT_CONNECT_RETRIED:
            if value != endpoint.last_retry_ms:   # one line per backoff step, then silence at the cap
                endpoint.last_retry_ms = value
                log.warning("error_bus_unreachable", endpoint=endpoint.address, retry_in_ms=value)
        else:
            endpoint.connected = endpoint.subscribed = False
            log.warning("error_bus_handshake_failed", endpoint=endpoint.address,
                        hint="the peer is not a SUB (a legacy collector binding PUB on 7150?)")


class Registrar:
    """Registers ``agents`` with one neighbour (a REQ per attempt), retrying with backoff until done."""

    def __init__(self, context: zmq.Context[Any], target: str, endpoint: str, agents: list[AgentInfo],
                 settings: RegistrationSettings, backoff: BackoffSettings, stop: threading.Event):
        self.context = context
        self.target = target
        self.endpoint = endpoint
        self.pending = list(agents)
        self.settings = settings
        self.backoff = Backoff(backoff)
        self.stop_event = stop
        self.registered: list[str] = []
        self.last_error: str | None = None
        self.thread = threading.Thread(target=self._run, name=f"neighbours-{target}", daemon=True)

    def status(self) -> dict[str, Any]:
        return {"endpoint": self.endpoint, "registered": list(self.registered),
                "pending": [a.name for a in self.pending], "attempts": self.backoff.attempts,
                "last_error": self.last_error}

    def _run(self) -> None:
        while self.pending and not self.stop_event.is_set():
            self._attempt_all()
            if not self.pending:
                log.info("registered", neighbour=self.target, endpoint=self.endpoint, agents=len(self.registered))
                return
            if self.backoff.exhausted():
                log.warning("registration_abandoned", neighbour=self.target, endpoint=self.endpoint,
                            attempts=self.backoff.attempts, error=self.last_error)
                return
            delay = self.backoff.next_delay()
            log.warning("neighbour_unavailable", neighbour=self.target, endpoint=self.endpoint,
                        error=self.last_error, retry_in_s=round(delay, 3))
            self.stop_event.wait(delay)

    def _attempt_all(self) -> None:
        for agent in list(self.pending):
            if self.stop_event.is_set():
                return
            try:
                reply = self._request(register_request(agent, self.settings))
            except TimeoutError as exc:
                self.last_error = str(exc)
                return                      # the neighbour is not there: back off for all agents
            if isinstance(reply, dict) and str(reply.get("status", "")).lower() == "error":
                self.last_error = f"{agent.name}: {reply.get('error') or reply.get('message')}"
                continue
            self.pending.remove(agent)
            self.registered.append(agent.name)

    def _request(self, payload: dict[str, Any]) -> Any:
        sock = self.context.socket(zmq.REQ)
        sock.setsockopt(zmq.LINGER, 0)
        try:
            sock.connect(self.endpoint)
            sock.send(json.dumps(payload).encode("utf-8"))
            if not sock.poll(int(self.settings.timeout_s * 1000)):
                raise TimeoutError(f"no reply from {self.endpoint} within {self.settings.timeout_s}s")
            try:
                return json.loads(sock.recv().decode("utf-8"))
            except ValueError:
                return {"status": "error", "error": "reply is not JSON"}
        finally:
            sock.close()


def register_request(agent: AgentInfo, settings: RegistrationSettings) -> dict[str, Any]:
    """The BaseAgent ``register_agent`` message, envelope fields included (legacy-protocol.md §0.1)."""
    host = settings.host or _local_address()
    return {
        "action": "register_agent",
        "agent_name": agent.name,
        "status": "HEALTHY",
        "location": settings.location or socket.gethostname(),
        "registration_data": {
            "agent_id": agent.name,
            "agent_type": agent.agent_type,
            "host": host,
            "port": agent.port,
            "health_check_port": agent.health_port,
            "capabilities": list(agent.capabilities),
            "dependencies": [],
            "metadata": {"start_time": datetime.now().isoformat(), "python_version": sys.version,
                         "served_by": agent.agent_type},
        },
        "source_agent": agent.name,
        "request_id": str(uuid.uuid4()),
        "timestamp": datetime.now().isoformat(),
    }


def _local_address() -> str:
    try:
        return socket.gethostbyname(socket.gethostname())
    except OSError:
        return "localhost"


class Neighbours:
    """Everything optional around a hub. ``start()`` returns at once; nothing here raises on absence.

        neighbours = Neighbours(settings.neighbours, context, hub_title, agents, offset=offset)
        neighbours.start()
        neighbours.report_error("legacy_bind_failed", "port 7102 in use", severity="ERROR")
        neighbours.stop()
    """

    def __init__(self, settings: NeighboursSettings, context: zmq.Context[Any], hub_name: str,
                 agents: Iterable[AgentInfo] = (), *, offset: int = 0):
        self.settings = settings
        self.context = context
        self.hub_name = hub_name
        self.agents = list(agents)
        shift = self.shift = offset if settings.apply_port_offset else 0
        bus = settings.error_bus
        self.errors: ErrorBusPublisher | None = None
        if bus.enabled and bus.endpoints:
            self.errors = ErrorBusPublisher(context, [shift_endpoint(e, shift) for e in bus.endpoints],
                                            bus.backlog, settings.backoff)
        self._stop = threading.Event()
        self.registrars = self._registrars(shift)

    def _registrars(self, shift: int) -> list[Registrar]:
        reg = self.settings.registration
        if not reg.enabled:
            return []
        agents = self.agents if reg.agents else self.agents[:1]
        return [Registrar(self.context, target, shift_endpoint(getattr(reg, key), shift), agents, reg,
                          self.settings.backoff, self._stop)
                for target, key in TARGETS if getattr(reg, key) and agents]

    def start(self, agents: Iterable[AgentInfo] | None = None) -> None:
        """Start the ErrorBus publisher and the registrations (of ``agents`` when given here)."""
        if agents is not None:
            self.agents = list(agents)
            self.registrars = self._registrars(self.shift)
        if self.errors:
            self.errors.start()
        for registrar in self.registrars:
            registrar.thread.start()

    def stop(self, timeout: float = 2.0) -> None:
        self._stop.set()
        for registrar in self.registrars:
            if registrar.thread.is_alive():
                registrar.thread.join(timeout)
        if self.errors:
            self.errors.stop(timeout)

    def report_error(self, error_type: str, message: str, severity: str = "ERROR", *, agent: str | None = None,
                     details: dict[str, Any] | None = None) -> None:
        """Queue one legacy ``ERROR:`` report to every ErrorBus endpoint (never blocks, never raises)."""
        if not self.errors:
            return
        report: dict[str, Any] = {"timestamp": time.time(), "agent": agent or self.hub_name,
                                  "error_type": error_type, "message": message, "severity": severity}
        if details:
            report["details"] = details
        self.errors.report(("ERROR:" + json.dumps(report, default=str)).encode("utf-8"))

    def status(self) -> dict[str, Any]:
        return {"error_bus": self.errors.status() if self.errors else {},
                "registration": {r.target: r.status() for r in self.registrars}}

    def health_check(self) -> tuple[bool, dict[str, Any]]:
        """Always ok (neighbours are optional); the detail says which are reachable."""
        return True, self.status()

