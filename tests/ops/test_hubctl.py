"""The bus knows no hub: no bus module imports agents or migrations, and `hubctl ping` loads no hub.

`hubctl` (agents/hubctl.py) names the two hubs; its names match the hubs' own ports and data dirs, and a
named endpoint reaches the hub under PORT_OFFSET with a token minted from the hub's data dir.
"""
from __future__ import annotations

import argparse
import ast
import json
import os
import subprocess
import sys
from pathlib import Path

from agents.hubs import HUBS, forwarder_defaults
from bus.client import NamedHub, resolve_endpoint
from tests.support.hubproc import REPO, HubProcess

BUS = REPO / "bus"
FORBIDDEN = ("agents", "migrations")
HUB_STACKS = ("agents.memory_hub", "agents.model_manager_suite", "sqlalchemy", "alembic", "torch", "faiss",
              "llama_cpp", "sentence_transformers", "redis", "bus.forwarder", "bus.daemon")


def imported_modules(path: Path) -> set[str]:
    """Every module an import statement names, at any depth (lazy imports inside functions too)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def test_no_bus_module_imports_agents_or_migrations():
    modules = sorted(BUS.rglob("*.py"))
    assert len(modules) > 20
    offenders = {str(path.relative_to(REPO)): sorted(name for name in imported_modules(path)
                                                     if name.split(".")[0] in FORBIDDEN)
                 for path in modules}
    assert {path: names for path, names in offenders.items() if names} == {}


def test_the_import_check_sees_lazy_imports(tmp_path):
    module = tmp_path / "lazy.py"
    module.write_text("def f():\n    from agents.verify import run\n    import migrations.legacy.cli\n")
    assert {"agents.verify", "migrations.legacy.cli"} <= imported_modules(module)


def modules_after(code: str) -> tuple[int, list[str]]:
    """Run ``code`` (which sets ``rc``) in a fresh interpreter; its exit code and the modules it loaded."""
    script = f"import json, sys\n{code}\nprint(json.dumps([rc, sorted(sys.modules)]))"
    proc = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    rc, modules = json.loads(proc.stdout.splitlines()[-1])
    return rc, modules


def test_bus_cli_ping_imports_neither_agents_nor_migrations():
    rc, modules = modules_after("from bus import cli\nrc = cli.main(['ping', '127.0.0.1:1', '--timeout', '0.2'])")
    assert rc == 1                          # nobody on port 1: the command ran
    assert "bus.cli" in modules and [m for m in modules if m.split(".")[0] in FORBIDDEN] == []


def test_hubctl_ping_builds_the_full_parser_without_loading_a_hub():
    rc, modules = modules_after("from agents import hubctl\n"
                                "rc = hubctl.main(['ping', '127.0.0.1:1', '--timeout', '0.2'])")
    assert rc == 1
    assert {"agents.hubctl", "agents.verify", "migrations.legacy.cli"} <= set(modules)   # the full parser
    assert [m for m in modules if m.startswith(HUB_STACKS)] == []


def test_named_hubs_are_the_hubs_own_ports_and_data_dirs():
    from agents.memory_hub.hub import SPEC as MEMORY
    from agents.model_manager_suite.hub import SPEC as MODELS
    from bus.daemon import settings_for

    for name, spec in (("memory", MEMORY), ("models", MODELS)):
        settings = settings_for(spec, argparse.Namespace(config=None, data_dir=None, log_level=None), {})
        hub = settings.common.hub
        assert HUBS[name] == NamedHub(name=spec.name, native_port=hub.native_port, http_port=hub.http_port,
                                      events_port=hub.events_port, data_dir=settings.common.storage.data_dir)


def test_forwarded_ports_are_ports_memory_hub_binds():
    from agents.memory_hub.hub import HANDLER_CLASSES

    served = {p for cls in HANDLER_CLASSES for p in (*cls.legacy_ports, *cls.legacy_health_ports)}
    ports = set(forwarder_defaults()["forwarder"]["ports"])
    assert {5713, 5574, 5715} <= ports <= served


def test_resolve_endpoint_names_only_the_hubs_it_is_given():
    env = {"PORT_OFFSET": "100"}
    assert resolve_endpoint("models", HUBS, env) == "tcp://127.0.0.1:7111"
    assert resolve_endpoint("10.0.0.2:7010", HUBS, env) == "tcp://10.0.0.2:7010"
    assert resolve_endpoint(":5713", {}, env) == "tcp://127.0.0.1:5713"
    for bad in ("memory", None):
        try:
            resolve_endpoint(bad, {}, env)
        except ValueError as exc:
            assert "host:port" in str(exc)
        else:
            raise AssertionError(f"{bad!r} resolved without named hubs")


def test_hubctl_reaches_a_named_hub_and_mints_its_token(tmp_path):
    """`hubctl ping memory` and `hubctl call ...` from a directory whose ./var/memory_hub is the hub's data dir."""
    with HubProcess("echo_hub", tmp_path / "var" / "memory_hub", module="tests.bus.echo_hub") as hub:
        env = {**os.environ, "PORT_OFFSET": str(hub.offset), "PYTHONPATH": str(REPO)}
        env.pop("HUB_TOKEN", None)

        def hubctl(*argv: str) -> subprocess.CompletedProcess:
            return subprocess.run([sys.executable, "-m", "agents.hubctl", *argv], cwd=tmp_path, env=env,
                                  capture_output=True, text=True, timeout=60)

        ping = hubctl("ping", "memory")
        assert ping.returncode == 0 and hub.endpoint in ping.stdout, ping.stderr
        call = hubctl("call", "EchoAgent", "echo", '{"word": "w"}')      # default endpoint: memory
        assert call.returncode == 0, call.stderr
        assert json.loads(call.stdout) == {"word": "w", "extra": None, "caller": "hubctl"}
        assert hubctl("ping", "models", "--timeout", "0.3").returncode == 1     # nothing on the models port
