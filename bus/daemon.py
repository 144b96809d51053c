"""Run a hub as a daemon: settings, logging, sockets, HTTP, events, handlers, signals, systemd notify.

Each hub provides a ``HubSpec`` (name, version, default ports, its settings class, and a ``build`` function
that turns a ``Runtime`` into an ``Assembly`` of handlers and health checks). Settings are checked once, at
load: the sections every hub has into ``CommonSettings``, the hub's own into ``spec.settings_class`` (one YAML
file holds both; its top-level keys are split by field name). A ``ConfigError`` at load or while the hub is
built exits 2 with ``<hub>: configuration error: <key>: <reason>``. This module is the only place that reads
the process environment (PORT_OFFSET, env overrides, NOTIFY_SOCKET).
"""
from __future__ import annotations

import argparse
import gc
import dataclasses
import os
import signal
import sys
import threading
import time
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

import yaml
import zmq

from bus.config import (COMMON_ENV, AuthSection, ConfigError, CurveSection, HubSection, LegacySection,
                        LoggingSection, StorageSection, port_offset)
from bus.dispatch import AfterCall, Dispatcher, Policy
from bus.error_reports import ErrorReports
from bus.errors import HubError
from bus.events import EventPublisher, EventsSettings
from bus.filemodes import PRIVATE_UMASK, secure_data_dir
from bus.handler import Handler, Principal
from bus.http import HttpFrontend, HttpLimits, HttpSettings
from bus.hub_actions import HubActions
from bus.idempotency import IdempotencyStore
from bus.legacy import resolve_legacy_ports
from bus.log import configure_logging, get_logger
from bus.metrics import HubMetrics
from bus.neighbours import Neighbours, NeighboursSettings, agents_from_handlers
from bus.openapi import openapi_document
from bus.periodic import PeriodicTask
from bus.revocations import FILE_NAME as REVOCATIONS_FILE, RevocationFeed, Revocations
from bus.sdnotify import SystemdNotifier
from bus.security import SocketSecurity
from bus.server import HubServer, ServerLimits, Sockets
from bus.settings import SettingError, load, to_mapping
from bus.tokens import TokenService, load_or_create_secret, secret_path

log = get_logger("bus.daemon")
Check = Callable[[], tuple[bool, Any]]


@dataclass(frozen=True)
class CommonSettings:
    """The sections every hub has, whatever its own."""

    hub: HubSection = field(default_factory=HubSection)
    legacy: LegacySection = field(default_factory=LegacySection)
    auth: AuthSection = field(default_factory=AuthSection)
    curve: CurveSection = field(default_factory=CurveSection)
    logging: LoggingSection = field(default_factory=LoggingSection)
    storage: StorageSection = field(default_factory=StorageSection)
    http: HttpSettings = field(default_factory=HttpSettings)
    events: EventsSettings = field(default_factory=EventsSettings)
    neighbours: NeighboursSettings = field(default_factory=NeighboursSettings)

    def __post_init__(self) -> None:
        if self.events.curve and not self.curve.has_server_keys():
            raise SettingError("events.curve", "needs curve.server_secret_key and curve.server_public_key "
                                               "(generate with: hubctl curve-keys)")


@dataclass
class Runtime:
    """What a hub's composition code gets: settings, data dir, and the shared bus services."""

    settings: CommonSettings
    hub_settings: Any                  # an instance of the hub's ``HubSpec.settings_class``
    data_dir: Path
    events: EventPublisher
    metrics: HubMetrics
    tokens: TokenService
    port_offset: int
    context: zmq.Context[Any]
    env: Mapping[str, str]


@dataclass
class Assembly:
    handlers: list[Handler]
    checks: dict[str, Check] = field(default_factory=dict)
    critical: set[str] = field(default_factory=set)
    policies: list[Policy] = field(default_factory=list)
    after_call: list[AfterCall] = field(default_factory=list)
    close: list[Callable[[], None]] = field(default_factory=list)
    idempotency: IdempotencyStore | None = None      # where native idempotency keys are kept (the hub's SQL)
    revoke: Callable[[Principal], None] | None = None   # hub.logout; default: the bus's in-process list
    # blocking waits for background start-up work (True when it succeeded): READY=1 once all returned
    startup: list[Callable[[], bool]] = field(default_factory=list)


@dataclass(frozen=True)
class HubSpec:
    name: str                      # e.g. "memory_hub"
    title: str                     # e.g. "MemoryHub"
    version: str
    ports: dict[str, int]          # native_port, http_port, events_port
    settings_class: type           # frozen dataclass of the hub's own sections (bus.settings)
    env_map: dict[str, tuple[str, ...]]   # the hub's environment variables -> settings path
    build: Callable[[Runtime], Assembly]
    # event fields that carry content: stripped from what subscribers get unless events.include_content
    event_content_fields: tuple[str, ...] = ()
    # health checks (names in Assembly.checks) whose outages and recoveries are reported to the ErrorBus
    watched_checks: tuple[str, ...] = ()
    # capability each legacy agent announces when registering with SystemDigitalTwin (default basic_agent)
    agent_capabilities: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class LoadedSettings:
    common: CommonSettings
    hub: Any                       # an instance of ``HubSpec.settings_class``

    def printable(self) -> dict[str, Any]:
        """Both as one plain nested dict (lists, not tuples), the JWT secret masked (``--print-config``)."""
        tree = {**to_mapping(self.common), **to_mapping(self.hub)}
        tree["auth"]["secret"] = "***" if self.common.auth.secret else None
        return tree


def parse_args(spec: HubSpec, argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog=spec.name.replace("_", "-"), description=f"{spec.title} daemon")
    parser.add_argument("--config", help="YAML settings file (unknown keys are an error)")
    parser.add_argument("--data-dir", help="data directory (default from config, ./var/<hub>)")
    parser.add_argument("--log-level", help="debug|info|warning|error")
    parser.add_argument("--print-config", action="store_true", help="print the effective settings and exit")
    return parser.parse_args(argv)


def settings_for(spec: HubSpec, args: argparse.Namespace, env: Mapping[str, str]) -> LoadedSettings:
    """Defaults (the hub's ports, ./var/<hub>), the YAML file, the environment, then the command line."""
    defaults = {"hub": dict(spec.ports), "storage": {"data_dir": f"./var/{spec.name}"}}
    overrides: dict[str, Any] = {}
    if args.data_dir:
        overrides["storage"] = {"data_dir": args.data_dir}
    if args.log_level:
        overrides["logging"] = {"level": args.log_level}
    root = _root_class(spec.settings_class)
    tree: Any = load(root, [defaults], args.config, env=env, env_map={**COMMON_ENV, **spec.env_map},
                     overrides=overrides)
    return LoadedSettings(_part(CommonSettings, tree), _part(spec.settings_class, tree))


def _root_class(hub_class: type) -> type:
    """One dataclass with the common sections and the hub's: what the YAML file's top level may hold."""
    own = {f.name for f in dataclasses.fields(hub_class)}
    common = {f.name for f in dataclasses.fields(CommonSettings)}
    if own & common:
        raise TypeError(f"{hub_class.__name__} redefines common sections: {sorted(own & common)}")
    fields: list[tuple[str, Any, Any]] = []
    for cls in (CommonSettings, hub_class):
        hints = typing.get_type_hints(cls)
        for spec in dataclasses.fields(cls):
            fields.append((spec.name, hints[spec.name], dataclasses.field(
                default=spec.default, default_factory=spec.default_factory, metadata=spec.metadata)))
    return dataclasses.make_dataclass("Settings", fields, frozen=True)


def _part(cls: type, tree: Any) -> Any:
    """Section class ``cls`` from the root's fields of the same names (its own cross-field checks run here)."""
    try:
        return cls(**{spec.name: getattr(tree, spec.name) for spec in dataclasses.fields(cls)})
    except SettingError as exc:
        raise ConfigError(exc.reason, exc.key) from None


def configuration_error(spec: HubSpec, exc: ConfigError | SettingError) -> int:
    print(f"{spec.name}: configuration error: {exc}", file=sys.stderr)
    return 2


def main(spec: HubSpec, argv: list[str] | None = None) -> int:
    os.umask(PRIVATE_UMASK)   # every file the hub (or its embedded redis-server) creates is private
    env = dict(os.environ)
    args = parse_args(spec, argv)
    try:
        settings = settings_for(spec, args, env)
        offset = port_offset(env)
    except ConfigError as exc:
        return configuration_error(spec, exc)
    if args.print_config:
        print(yaml.safe_dump(settings.printable(), sort_keys=False))
        return 0
    configure_logging(settings.common.logging.level, settings.common.logging.json)
    try:
        return Daemon(spec, settings, offset, env).run()
    except (ConfigError, SettingError) as exc:      # e.g. a range the hub checks while it is built
        log.error("startup_failed", hub=spec.name, error=str(exc), kind=type(exc).__name__)
        return configuration_error(spec, exc)
    except (OSError, zmq.ZMQError, HubError, RuntimeError) as exc:
        log.error("startup_failed", hub=spec.name, error=str(exc), kind=type(exc).__name__)
        return 1


def freeze_start_up_objects() -> None:
    """Move what start-up allocated (models, indexes, modules: millions of objects) out of the collector's
    reach: otherwise every full collection walks them all, a pause of 100-400 ms on the router thread."""
    gc.collect()
    gc.freeze()


class Daemon:
    def __init__(self, spec: HubSpec, settings: LoadedSettings, offset: int, env: Mapping[str, str]):
        self.spec = spec
        self.loaded = settings
        self.settings = settings.common
        self.offset = offset
        self.env = env
        self.data_dir = Path(self.settings.storage.data_dir).resolve()
        self.metrics = HubMetrics(spec.name)
        self.context = zmq.Context.instance()
        self.started_at = time.time()
        self.legacy_notes: list[str] = []
        self.legacy_failed: list[str] = []
        self.assembly: Assembly | None = None
        self.server: HubServer | None = None
        self.neighbours: Neighbours | None = None
        self.watch: PeriodicTask | None = None

    def port(self, name: str) -> int:
        return int(getattr(self.settings.hub, name)) + self.offset

    def run(self) -> int:
        secure_data_dir(self.data_dir)
        hub, auth = self.settings.hub, self.settings.auth
        revocations = Revocations(self.data_dir / REVOCATIONS_FILE, leeway_s=float(auth.leeway_s))
        tokens = self._token_service(revocations)       # a hub with its own list (MemoryHub) replaces it in build
        feed = RevocationFeed(self.context, list(auth.revocation_feeds), revocations, on_revoked=tokens.forget,
                              curve_server_key=auth.revocation_feed_server_key)
        feed.start()
        security = SocketSecurity(self.context, self.settings.legacy.allow, self.settings.curve, self.metrics)
        event_settings = self.settings.events
        events = EventPublisher(self.context, f"tcp://{hub.host}:{self.port('events_port')}", self.spec.title,
                                on_publish=lambda topic: self.metrics.events.labels(topic).inc(),
                                private_fields=() if event_settings.include_content
                                else self.spec.event_content_fields,
                                secure=security.secure_events if event_settings.curve else None)
        events.start()
        runtime = Runtime(self.settings, self.loaded.hub, self.data_dir, events, self.metrics,
                          tokens, self.offset, self.context, self.env)
        neighbours = self.neighbours = Neighbours(self.settings.neighbours, self.context, self.spec.title,
                                                  offset=self.offset)
        reports = ErrorReports(neighbours.report_error, self.settings.neighbours.error_bus.reports, self.spec.title,
                               self.spec.watched_checks)
        events.observers.append(reports.on_event)     # `hub.error` events of the domain code
        try:
            assembly = self.assembly = self.spec.build(runtime)
        except BaseException:
            feed.stop()
            events.stop()
            security.stop()
            raise
        http: HttpFrontend | None = None
        try:
            auth_required = auth.required
            if not auth_required:
                log.warning("AUTH_DISABLED", hub=self.spec.name,
                            message="auth.required is false: every native/HTTP caller is trusted. "
                                    "Use only on a trusted single host.")
            def describe_actions() -> dict[str, Any]:
                return dispatcher.describe_actions()

            builtin = HubActions(self.spec.title, self.spec.version, self.health, describe_actions,
                                 tokens, assembly.revoke or _bus_revoke(revocations, tokens))
            dispatcher = Dispatcher(assembly.handlers, self.metrics, tokens, auth_required, builtin,
                                    assembly.policies, assembly.after_call, assembly.idempotency)
            limits = ServerLimits(hub.max_frame_bytes, hub.default_deadline_ms / 1000, hub.drain_timeout_s)
            server = self.server = HubServer(self.context, dispatcher, self.metrics, hub.workers, hub.queue_limit,
                                             limits)
            sockets = self._bind(security, assembly)
            server.attach(sockets)
            for handler in assembly.handlers:
                handler.legacy_adapter.observers.append(self.metrics.count_legacy_action)
                for source in handler.watched():
                    server.watch(source)
            self._start_neighbours(assembly, server, neighbours, reports)
            frontend = HttpFrontend(hub.host, self.port("http_port"), self.context, server.http_endpoint,
                                    self.metrics, self.health,
                                    lambda: openapi_document(self.spec.title, self.spec.version, dispatcher),
                                    HttpLimits.from_settings(self.settings.http, limits.default_deadline_s))
            frontend.start()
            http = frontend             # stopped at shutdown only once started
            for handler in assembly.handlers:
                handler.start()
            self.metrics.info.labels(self.spec.title, self.spec.version).set(1)
            notifier = SystemdNotifier(dict(self.env))
            self._install_signals()
        except BaseException:          # e.g. a port in use: close what build opened (an embedded redis-server)
            feed.stop()
            self._shutdown(http, events, security, None)
            raise
        log.info("hub_started", hub=self.spec.name, native=self.port("native_port"), http=http.port,
                 events=self.port("events_port"), legacy=[b.bound_port for b in sockets.legacy.values()],
                 data_dir=str(self.data_dir), auth_required=auth_required)
        for note in self.legacy_notes:
            log.warning("legacy_port_note", note=note)
        self._notify_ready(notifier, assembly.startup)
        if hub.watchdog:
            notifier.start_watchdog(lambda: True)
        try:
            server.serve_forever()
        finally:
            notifier.notify("STOPPING=1")
            feed.stop()
            self._shutdown(http, events, security, notifier)
        log.info("hub_stopped", hub=self.spec.name)
        return 0

    def _notify_ready(self, notifier: SystemdNotifier, startup: list[Callable[[], bool]]) -> None:
        """READY=1 once the assembly's start-up waits returned (the ports already answer meanwhile)."""
        waits = list(startup)

        def wait_and_notify() -> None:
            ok = all([wait() for wait in waits])
            freeze_start_up_objects()
            status = "serving" if ok else "serving, start-up incomplete (see health)"
            notifier.notify(f"READY=1\nSTATUS={status}")
            log.info("hub_ready", hub=self.spec.name, startup_ok=ok)

        if waits:
            threading.Thread(target=wait_and_notify, name="sd-ready", daemon=True).start()
        else:
            freeze_start_up_objects()
            notifier.notify("READY=1\nSTATUS=serving")

    def _start_neighbours(self, assembly: Assembly, server: HubServer, neighbours: Neighbours,
                          reports: ErrorReports) -> None:
        """ErrorBus reports and SystemDigitalTwin/CoreOrchestrator registration: optional, never fatal."""
        hub = self.settings.hub
        agents = agents_from_handlers(assembly.handlers, self.spec.title, hub.native_port, hub.http_port,
                                      self.offset, self.spec.agent_capabilities)
        neighbours.start(agents)
        assembly.checks["neighbours"] = neighbours.health_check
        for failed in self.legacy_failed:
            reports.report("legacy_bind_failed", f"legacy port in use: {failed}", "WARNING")
        server.dispatcher.after_call.append(reports.after_call)
        server.legacy_failure_hooks.append(reports.on_legacy_failure)
        if neighbours.errors is not None:
            self.watch = reports.watch(assembly.checks)
            self.watch.start()

    def _token_service(self, revocations: Revocations) -> TokenService:
        auth = self.settings.auth
        secret: str | bytes | None = auth.secret
        if not secret:
            secret = load_or_create_secret(secret_path(self.data_dir, auth.secret_file))
        return TokenService(secret, algorithm=auth.algorithm, issuer=auth.issuer, ttl_s=auth.token_ttl_s,
                            leeway_s=auth.leeway_s, is_revoked=revocations.is_revoked,
                            audience=auth.audience or self.spec.name,
                            mint_audiences=list(auth.mint_audiences), max_lifetime_s=auth.max_token_lifetime_s)

    def _bind(self, security: SocketSecurity, assembly: Assembly) -> Sockets:
        hub, legacy = self.settings.hub, self.settings.legacy
        native = self.context.socket(zmq.ROUTER)
        _tune(native, hub.max_frame_bytes)
        security.secure_native(native)
        native_endpoint = f"tcp://{hub.host}:{self.port('native_port')}"
        native.bind(native_endpoint)
        sockets = Sockets(native=native)
        reserved = {self.port("native_port"), self.port("http_port"), self.port("events_port")}
        bindings, self.legacy_notes = resolve_legacy_ports(assembly.handlers, legacy.agent_overrides(),
                                                           self.offset, reserved, legacy.enabled)
        for binding in bindings:
            sock = self.context.socket(zmq.ROUTER)
            _tune(sock, hub.max_frame_bytes)
            security.secure_legacy(sock)
            try:
                sock.bind(f"tcp://{legacy.host}:{binding.bound_port}")
            except zmq.ZMQError as exc:
                sock.close(linger=0)
                self.legacy_failed.append(f"{binding.handler.name}:{binding.bound_port}")
                log.error("legacy_bind_failed", agent=binding.handler.name, port=binding.bound_port, error=str(exc))
                continue
            sockets.legacy[sock] = binding
        return sockets

    def _install_signals(self) -> None:
        def stop(signum: int, _frame: FrameType | None) -> None:
            log.info("signal_received", signal=signal.Signals(signum).name)
            if self.server:
                self.server.request_stop()

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)

    def _shutdown(self, http: HttpFrontend | None, events: EventPublisher, security: SocketSecurity,
                  notifier: SystemdNotifier | None) -> None:
        if notifier is not None:
            notifier.stop()
        if http is not None:
            http.stop()
        for handler in reversed(self.assembly.handlers if self.assembly else []):
            try:
                handler.stop()
            except Exception as exc:
                log.error("handler_stop_failed", agent=handler.name, error=repr(exc))
        for close in reversed(self.assembly.close if self.assembly else []):
            try:
                close()
            except Exception as exc:
                log.error("close_failed", error=repr(exc))
        if self.watch is not None:
            self.watch.stop()
        if self.neighbours is not None:
            self.neighbours.stop()
        events.stop()
        if self.server:
            self.server.close()
        security.stop()

    def health(self) -> dict[str, Any]:
        checks: dict[str, dict[str, Any]] = {}
        assembly = self.assembly
        for name, check in (assembly.checks.items() if assembly else []):
            checks[name] = _run_check(check)
        for handler in (assembly.handlers if assembly else []):
            for name, (ok, detail) in _safe_handler_checks(handler).items():
                checks[f"{handler.name}.{name}"] = {"ok": ok, "detail": detail}
        checks["legacy_ports"] = {"ok": not self.legacy_failed,
                                  "detail": {"failed": self.legacy_failed, "notes": self.legacy_notes}}
        for name, result in checks.items():
            self.metrics.health.labels(name).set(1 if result["ok"] else 0)
        failing = [name for name, result in checks.items() if not result["ok"]]
        critical = assembly.critical if assembly else set()
        status = "ok" if not failing else ("down" if critical & set(failing) else "degraded")
        return {"status": status, "hub": self.spec.title, "version": self.spec.version,
                "uptime_s": round(time.time() - self.started_at, 3), "checks": checks}


def _bus_revoke(revocations: Revocations, tokens: TokenService) -> Callable[[Principal], None]:
    def revoke(principal: Principal) -> None:
        revocations.add(principal.token_id or "", principal.expires_at or time.time() + tokens.ttl_s)
        tokens.forget(principal.token_id or "")

    return revoke


def _run_check(check: Check) -> dict[str, Any]:
    try:
        ok, detail = check()
    except Exception as exc:
        ok, detail = False, repr(exc)
    return {"ok": bool(ok), "detail": detail}


def _safe_handler_checks(handler: Handler) -> dict[str, Any]:
    try:
        return handler.health_checks()
    except Exception as exc:
        return {"checks": (False, repr(exc))}


def _tune(sock: zmq.Socket[Any], max_frame: int) -> None:
    sock.setsockopt(zmq.LINGER, 500)
    sock.setsockopt(zmq.ROUTER_MANDATORY, 0)
    sock.setsockopt(zmq.RCVHWM, 10000)
    sock.setsockopt(zmq.SNDHWM, 10000)
    # Frames up to 8x the limit are read and answered `too_large`; beyond that ZeroMQ drops the peer.
    sock.setsockopt(zmq.MAXMSGSIZE, max(max_frame * 8, 128 * 1024 * 1024))
