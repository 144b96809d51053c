"""`hubctl verify`: the seed's post-implementation checklist, checked live against running hubs.

    hubctl verify --host pc2       MemoryHub on this host
    hubctl verify --host mainpc    ModelManagerSuite on this host, the forwarded memory ports, MemoryHub on PC2
    hubctl verify --host dev       both hubs on this host (config/dev)

For each hub (ports and legacy switches read from its profile, ``config/<host>/<hub>.yaml`` or
``--memory-config`` / ``--models-config``; every port shifted by PORT_OFFSET or ``--offset``):

* ports: native, HTTP and events accept TCP connections;
* health: ``GET /health`` answers 200 with status ``ok``, the native ``hub.health`` too; the database and
  Redis checks it reports (``sql``, ``redis``) pass;
* legacy compatibility, per legacy agent: a legacy ``health_check`` on each legacy main port, any message on
  each legacy health port, and one harmless legacy action (``PROBES``) answered in the agent's vocabulary;
  agents switched off in ``legacy.agents`` are SKIP (their legacy agent still serves);
* error reporting: a call with a forged token gets a typed error reply and ``hub_errors_total`` counts it;
* metrics: ``GET /metrics`` serves the hub's Prometheus metrics;
* inter-service (mainpc, dev): from this host MemoryHub answers a native ping and a legacy AgentTrustScorer
  call; on mainpc each port relayed by ``hubctl forward`` reaches MemoryHub;
* model facts (mainpc, dev; when ``model_facts.memory_hub_endpoint`` is set): every model GGUFModelManager
  lists has its ``models:catalogue:<id>`` in MemoryHub (read with the suite's MemoryHub token) and the suite's
  outbox holds no refused fact.

Prints a PASS/FAIL/SKIP table; the exit code is 1 when any row is FAIL. Nothing here writes data.
"""
from __future__ import annotations

import argparse
import json
import os
import socket
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from collections.abc import Callable

import zmq

from agents.hubs import HUBS
from bus.client import HubClient
from bus.errors import HubError
from bus.legacy import resolve_legacy_ports

if TYPE_CHECKING:
    from bus.daemon import LoadedSettings
    from bus.forwarder import ForwarderSettings

REPO = Path(__file__).resolve().parents[1]
HOSTS = {"pc2": ("memory",), "mainpc": ("models",), "dev": ("memory", "models")}
HUB_NAMES = {key: hub.name for key, hub in HUBS.items()}
HEALTHY = {"ok", "healthy", "success"}
Check = Callable[[Any], bool]


def _status(*words: str) -> Check:
    return lambda reply: isinstance(reply, dict) and str(reply.get("status", "")).lower() in words


def _answered(reply: Any) -> bool:
    """A reply in the agent's own vocabulary: not an error, not an unknown action."""
    if not isinstance(reply, dict) or str(reply.get("status", "")).lower() == "error":
        return False
    return not any(str(reply.get(k, "")).startswith("Unknown action") for k in ("error", "message", "reason"))


# One harmless legacy request per agent (read-only) and how its answer is judged (legacy-protocol.md).
PROBES: dict[str, tuple[dict, Check]] = {
    "MemoryClient": ({"action": "health_check"}, _status("success", "ok", "healthy")),
    "SessionMemoryAgent": ({"action": "search_interactions", "query": "hubctl verify", "limit": 1},
                           _status("success")),
    "KnowledgeBase": ({"action": "search_facts", "query": "hubctl verify", "limit": 1}, _status("success")),
    "MemoryOrchestratorService": ({"action": "search_memory", "data": {"query": "hubctl verify", "limit": 1}},
                                  _status("success")),
    "UnifiedMemoryReasoningAgent": ({"action": "get_context", "session_id": "hubctl-verify"}, _status("ok")),
    "ContextManager": ({"action": "get_context_text", "max_items": 1}, _status("success")),
    "ExperienceTracker": ({"action": "get_experiences", "limit": 1}, _status("success")),
    "CacheManager": ({"action": "get", "cache_type": "hubctl_verify", "key": "probe"},
                     lambda r: _status("success")(r) or (isinstance(r, dict) and r.get("message") == "Cache miss")),
    "ProactiveContextMonitor": ({"action": "get_context_history", "limit": 1}, _status("success")),
    "UnifiedUtilsAgent": ({"action": "health_check"}, _answered),      # every other action deletes files
    "AuthenticationAgent": ({"action": "validate_token", "token": "hubctl-verify"},
                            lambda r: _status("success")(r) and r.get("valid") is False),
    "AgentTrustScorer": ({"action": "get_trust_score", "model_id": "hubctl-verify"}, _status("success")),
    "GGUFModelManager": ({"action": "list_models"}, _status("success")),
    "ModelManagerAgent": ({"action": "generate"},                     # no prompt: refused before any model work
                          lambda r: isinstance(r, dict) and r.get("message") == "Missing 'prompt' field"),
    "PredictiveLoader": ({"action": "predict_models"}, _status("success")),
    "ModelEvaluationFramework": ({"action": "get_stats"}, _status("success")),
}


# Legacy agents whose main-port loop had no health action (legacy-protocol.md §3.4).
NO_MAIN_PORT_HEALTH = {"ModelEvaluationFramework"}


@dataclass
class Row:
    hub: str
    check: str
    result: str          # PASS | FAIL | SKIP
    detail: str


@dataclass
class Target:
    """One hub as seen from this host."""

    key: str                        # memory | models
    title: str
    host: str
    offset: int
    settings: LoadedSettings
    handlers: tuple = ()
    legacy_address: str = ""        # where its legacy ports are reached, when not its legacy.host

    def port(self, name: str) -> int:
        return int(getattr(self.settings.common.hub, name)) + self.offset

    @property
    def legacy_host(self) -> str:
        return _connectable(self.legacy_address or self.settings.common.legacy.host, self.host)

    @property
    def http_url(self) -> str:
        return f"http://{self.host}:{self.port('http_port')}"

    @property
    def native(self) -> str:
        return f"tcp://{self.host}:{self.port('native_port')}"


@dataclass
class Checklist:
    timeout: float = 5.0
    rows: list[Row] = field(default_factory=list)
    context: zmq.Context = field(default_factory=zmq.Context.instance)

    def add(self, hub: str, check: str, ok: bool | None, detail: Any = "") -> bool:
        result = "SKIP" if ok is None else ("PASS" if ok else "FAIL")
        self.rows.append(Row(hub, check, result, detail if isinstance(detail, str) else _short(detail)))
        return bool(ok)

    @property
    def failed(self) -> bool:
        return any(row.result == "FAIL" for row in self.rows)

    # -------------------------------------------------------------- primitives
    def tcp(self, host: str, port: int) -> tuple[bool, str]:
        try:
            with socket.create_connection((host, port), timeout=self.timeout):
                return True, f"{host}:{port} accepts connections"
        except OSError as exc:
            return False, f"{host}:{port}: {exc}"

    def http(self, url: str) -> tuple[int, bytes]:
        try:
            with urllib.request.urlopen(url, timeout=self.timeout) as resp:
                return resp.status, resp.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()

    def legacy(self, host: str, port: int, request: Any) -> Any:
        """One REQ round trip as a legacy client; raises TimeoutError when nothing answers."""
        sock = self.context.socket(zmq.REQ)
        sock.setsockopt(zmq.LINGER, 0)
        try:
            sock.connect(f"tcp://{host}:{port}")
            sock.send(json.dumps(request).encode("utf-8"))
            if not sock.poll(int(self.timeout * 1000)):
                raise TimeoutError(f"no reply on {host}:{port} within {self.timeout}s")
            return json.loads(sock.recv().decode("utf-8"))
        finally:
            sock.close()

    def legacy_row(self, hub: str, check: str, host: str, port: int, request: Any, judge: Check) -> bool:
        try:
            reply = self.legacy(host, port, request)
        except (TimeoutError, ValueError, zmq.ZMQError) as exc:
            return self.add(hub, check, False, f"port {port}: {exc}")
        return self.add(hub, check, judge(reply), f"port {port}: {_short(reply)}")

    # -------------------------------------------------------------- one hub
    def verify_hub(self, t: Target) -> None:
        up = [self.add(t.title, f"port {name.split('_')[0]}", *self.tcp(t.host, t.port(name)))
              for name in ("native_port", "http_port", "events_port")]
        if not any(up):
            self.add(t.title, "hub running", False, "no port answers: the other checks were not run")
            return
        self.check_health(t)
        self.check_metrics_and_errors(t)
        self.check_legacy(t)

    def check_health(self, t: Target) -> None:
        try:
            code, body = self.http(t.http_url + "/health")
            report = json.loads(body)
            failing = sorted(name for name, c in report.get("checks", {}).items() if not c.get("ok"))
            self.add(t.title, "HTTP /health", code == 200 and report.get("status") == "ok",
                     f"{code} {report.get('status')}" + (f"; failing: {', '.join(failing)}" if failing else ""))
        except (OSError, ValueError) as exc:
            self.add(t.title, "HTTP /health", False, str(exc))
        try:
            with HubClient(t.native, timeout=self.timeout, context=self.context) as client:
                health = client.call("hub", "health")
        except HubError as exc:
            self.add(t.title, "hub/health", False, f"{exc.code}: {exc.message}")
            return
        self.add(t.title, "hub/health", health.get("status") == "ok", health.get("status"))
        checks = health.get("checks", {})
        for name, label in (("sql", "database"), ("redis", "redis")):
            if name in checks:
                self.add(t.title, label, checks[name]["ok"], checks[name].get("detail"))
            elif t.key == "memory":
                self.add(t.title, label, False, f"health reports no '{name}' check")

    def check_metrics_and_errors(self, t: Target) -> None:
        code = None
        try:
            with HubClient(t.native, token="hubctl-verify-forged", timeout=self.timeout,
                           context=self.context) as client:
                client.call("hub", "version")
            self.add(t.title, "error reporting", False, "a forged token was accepted")
        except HubError as exc:
            code = exc.code
            self.add(t.title, "error reporting", code in ("unauthorized", "forbidden", "unknown_action"),
                     f"typed error reply: {code}")
        counter = f'hub_errors_total{{code="{code}"}}'
        for _ in range(10):                   # the counter moves right after the reply is sent
            try:
                status, body = self.http(t.http_url + "/metrics")
            except OSError as exc:
                self.add(t.title, "metrics", False, str(exc))
                return
            text = body.decode("utf-8", "replace")
            if not code or counter in text:
                break
            time.sleep(0.1)
        self.add(t.title, "metrics", status == 200 and "hub_requests_total" in text and "hub_info" in text,
                 f"{status}, {len(text.splitlines())} lines")
        if code:
            self.add(t.title, "errors counted", counter in text, counter + (" present" if counter in text
                                                                           else " missing"))

    def check_legacy(self, t: Target) -> None:
        legacy = t.settings.common.legacy
        reserved = {t.port("native_port"), t.port("http_port"), t.port("events_port")}
        bindings, _ = resolve_legacy_ports(list(t.handlers), legacy.agent_overrides(), t.offset, reserved,
                                           legacy.enabled)
        for handler in t.handlers:
            mine = [b for b in bindings if b.handler is handler]
            if not mine:
                self.add(t.title, f"legacy {handler.name}", None, "legacy ports off in config")
                continue
            for b in mine:
                kind = "health port" if b.health else "health"
                if not b.health and handler.name in NO_MAIN_PORT_HEALTH:
                    self.add(t.title, f"legacy {handler.name} {kind}", None,
                             "the legacy agent answered health only on its health port")
                    continue
                self.legacy_row(t.title, f"legacy {handler.name} {kind}", t.legacy_host, b.bound_port,
                                {"action": "health_check"},
                                _answered if b.health else _status(*HEALTHY))
            main = next((b for b in mine if not b.health), None)
            probe = PROBES.get(handler.name)
            if main is None or probe is None:
                self.add(t.title, f"legacy {handler.name} action", None, "no harmless legacy action known")
                continue
            self.legacy_row(t.title, f"legacy {handler.name} {probe[0]['action']}", t.legacy_host,
                            main.bound_port, *probe)

    # -------------------------------------------------------------- MainPC -> PC2
    def check_inter_service(self, memory: Target, origin: str) -> None:
        try:
            with HubClient(memory.native, timeout=self.timeout, context=self.context) as client:
                rtt = client.ping()
            self.add(origin, "MemoryHub ping", True, f"{memory.native} in {rtt * 1000:.1f} ms")
        except HubError as exc:
            self.add(origin, "MemoryHub ping", False, f"{memory.native}: {exc.message}")
        request, judge = PROBES["AgentTrustScorer"]
        self.legacy_row(origin, "MemoryHub AgentTrustScorer", memory.legacy_host, 7122 + memory.offset,
                        request, judge)

    def check_model_facts(self, models: Target) -> None:
        section = models.settings.hub.model_facts
        if not section.memory_hub_endpoint:
            self.add(models.title, "model facts in MemoryHub", None, "model_facts.memory_hub_endpoint not set")
            return
        from agents.model_manager_suite.model_facts import FactsSender

        token = FactsSender.token_from(section.token, section.token_file)
        listed = self.legacy(models.legacy_host, 5575 + models.offset, {"action": "list_models"})
        ids = sorted(m["model_id"] for m in (listed or {}).get("models", []) if isinstance(m, dict))
        try:
            with HubClient(section.memory_hub_endpoint, token=token, timeout=self.timeout,
                           context=self.context) as client:
                keys = set(client.call("MemoryClient", "kv_list",
                                       {"prefix": f"{section.prefix}catalogue:", "limit": 100000})["keys"])
                with HubClient(models.native, timeout=self.timeout, context=self.context) as suite:
                    outbox = suite.call("hub", "health")["checks"].get("model_facts", {})
        except HubError as exc:
            self.add(models.title, "model facts in MemoryHub", False, f"{exc.code}: {exc.message}")
            return
        missing = [i for i in ids if f"{section.prefix}catalogue:{i}" not in keys]
        detail = outbox.get("detail") or {}
        ok = listed is not None and not missing and outbox.get("ok", False)
        self.add(models.title, "model facts in MemoryHub", ok,
                 f"{len(ids) - len(missing)}/{len(ids)} models in the catalogue; outbox pending "
                 f"{detail.get('pending')}, refused {detail.get('dead')}" + (f"; missing {missing}" if missing else ""))

    def check_forwarder(self, forwarder: ForwarderSettings, offset: int) -> None:
        host = _connectable(forwarder.bind_host, "127.0.0.1")
        for port in forwarder.ports:
            self.legacy_row("forwarder", f"relay {port} -> {forwarder.remote_host}", host, port + offset,
                            {"action": "health_check"}, _answered)

    def render(self) -> str:
        widths = [max([len(r.hub) for r in self.rows] + [3]), max([len(r.check) for r in self.rows] + [5])]
        lines = [f"{'RESULT':6}  {'HUB':{widths[0]}}  {'CHECK':{widths[1]}}  DETAIL"]
        lines += [f"{r.result:6}  {r.hub:{widths[0]}}  {r.check:{widths[1]}}  {r.detail}" for r in self.rows]
        counts = {word: sum(r.result == word for r in self.rows) for word in ("PASS", "FAIL", "SKIP")}
        lines.append(f"{counts['PASS']} passed, {counts['FAIL']} failed, {counts['SKIP']} skipped")
        return "\n".join(lines)


def _connectable(bind: str, fallback: str) -> str:
    return fallback if bind in ("0.0.0.0", "*", "::", "") else bind


def _short(value: Any, limit: int = 160) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str, sort_keys=True)
    return text if len(text) <= limit else text[:limit - 3] + "..."


# ------------------------------------------------------------------ settings and entry point

def load_target(key: str, host: str, offset: int, config: str | None, env: dict[str, str]) -> Target:
    from bus.daemon import settings_for

    if key == "memory":
        from agents.memory_hub.hub import HANDLER_CLASSES, SPEC
    else:
        from agents.model_manager_suite.hub import HANDLER_CLASSES, SPEC
    settings = settings_for(SPEC, argparse.Namespace(config=config, data_dir=None, log_level=None), env)
    return Target(key, SPEC.title, _connectable(host or settings.common.hub.host, "127.0.0.1"), offset, settings,
                  tuple(HANDLER_CLASSES))


def profile(config_dir: Path, host: str, key: str) -> str | None:
    path = config_dir / host / f"{HUB_NAMES[key]}.yaml"
    return str(path) if path.is_file() else None


def forwarder_settings(path: str | None, env: dict[str, str]) -> ForwarderSettings | None:
    if not path or not Path(path).is_file():
        return None
    from agents.hubs import forwarder_defaults
    from bus.forwarder import load_relay_settings

    return load_relay_settings(forwarder_defaults(), path, env).forwarder


def run(args: argparse.Namespace, env: dict[str, str]) -> Checklist:
    offset = args.offset if args.offset is not None else int(env.get("PORT_OFFSET", "0") or 0)
    config_dir = Path(args.config_dir)
    checklist = Checklist(timeout=args.timeout)
    configs = {"memory": args.memory_config, "models": args.models_config}
    models_target = None
    for key in HOSTS[args.host]:
        target = load_target(key, "127.0.0.1", offset, configs[key] or profile(config_dir, args.host, key), env)
        checklist.verify_hub(target)
        models_target = target if key == "models" else models_target
    if args.host == "dev":
        memory = load_target("memory", args.memory_host or "127.0.0.1",
                             offset if args.memory_offset is None else args.memory_offset,
                             configs["memory"] or profile(config_dir, "dev", "memory"), env)
        checklist.check_inter_service(memory, "ModelManagerSuite host")
    if "models" in HOSTS[args.host]:
        checklist.check_model_facts(models_target)
    if args.host == "mainpc":
        forwarder = forwarder_settings(args.forwarder_config or str(config_dir / "mainpc" / "hub_forwarder.yaml"),
                                       env)
        remote_host = args.memory_host or (forwarder.remote_host if forwarder else "") or "127.0.0.1"
        remote_offset = args.memory_offset if args.memory_offset is not None else (
            forwarder.remote_port_offset if forwarder else 0)
        memory = load_target("memory", remote_host, remote_offset, configs["memory"], env)
        memory.legacy_address = remote_host
        checklist.check_inter_service(memory, "ModelManagerSuite host")
        if forwarder is not None and not args.no_forwarder:
            checklist.check_forwarder(forwarder, offset)
    return checklist


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--host", choices=sorted(HOSTS), default="dev", help="which host's checklist (default dev)")
    p.add_argument("--offset", type=int, default=None, help="PORT_OFFSET of the local hubs (default $PORT_OFFSET)")
    p.add_argument("--config-dir", default=str(REPO / "config"), help="profiles directory (<dir>/<host>/<hub>.yaml)")
    p.add_argument("--memory-config", default=None, help="MemoryHub profile (overrides --config-dir)")
    p.add_argument("--models-config", default=None, help="ModelManagerSuite profile (overrides --config-dir)")
    p.add_argument("--forwarder-config", default=None, help="hubctl forward profile (mainpc)")
    p.add_argument("--no-forwarder", action="store_true", help="mainpc: do not check the forwarded ports")
    p.add_argument("--memory-host", default=None, help="MemoryHub address seen from here (mainpc: default from "
                                                       "the forwarder's remote_host)")
    p.add_argument("--memory-offset", type=int, default=None, help="PORT_OFFSET of the MemoryHub host")
    p.add_argument("--timeout", type=float, default=5.0, help="seconds per probe")
    p.add_argument("--json", action="store_true", help="print the rows as JSON")


def run_from_args(args: argparse.Namespace) -> int:
    checklist = run(args, dict(os.environ))
    if args.json:
        print(json.dumps([row.__dict__ for row in checklist.rows], indent=2))
    else:
        print(checklist.render())
    return 1 if checklist.failed else 0
