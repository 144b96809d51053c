"""The two-PC deployment as shipped, in network namespaces: PC2 (192.168.100.17) runs MemoryHub, MainPC
(192.168.100.16) runs ModelManagerSuite and `hubctl forward`, a third host (192.168.100.50) is on the same LAN.

Each host is a network namespace with one veth into a bridge that lives in a namespace of its own (nothing is
added to the root namespace; no default routes). The daemons run on their production ports with the shipped
profiles unchanged (`config/pc2/memory_hub.yaml`, `config/mainpc/*.yaml`), the data directory and MODELS_DIR
given on the command line / in the environment as the systemd units do. Neighbours: an ErrorBus collector (SUB
on PC2:7150) and a SystemDigitalTwin (REP on MainPC:7120). Clients are programs run inside a namespace
(`tests/deploy/peers.py`): legacy REQ + JSON, the native client, HTTP.

Skipped, with the reason, only when network namespaces cannot be made (not root).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any
from collections.abc import Callable, Iterator

import pytest

from bus.tokens import TokenService, read_secret, secret_path
from tests.deploy.netns import Lan, NamespaceUnavailable, wait_for_line
from tests.support.hubproc import REPO
from tests.support.tiny_gguf import write_not_gguf, write_tiny_gguf

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

PC2, MAINPC, THIRD = "192.168.100.17", "192.168.100.16", "192.168.100.50"
PROFILES = REPO / "config"
PY = sys.executable
START_TIMEOUT = 180.0


class Deployment:
    def __init__(self, lan: Lan, base: Path):
        self.lan = lan
        self.base = base
        self.pc2_data = base / "pc2" / "var/lib/memory-hub"
        self.mainpc_data = base / "mainpc" / "var/lib/model-manager-suite"
        self.models = base / "mainpc" / "srv/voice-models"
        self.logs = base / "logs"
        self.errors_out = base / "errorbus.jsonl"
        self.twin_out = base / "twin.jsonl"
        self.memory_hub = self.suite = self.forwarder = None

    # -- processes, as the units start them ------------------------------------------------------------
    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in ("PORT_OFFSET", "NOTIFY_SOCKET", "WATCHDOG_USEC")}
        env.update({"PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1", "HF_HUB_OFFLINE": "1",
                    "TRANSFORMERS_OFFLINE": "1", **extra})
        return env

    def mainpc_env(self, **extra: str) -> dict[str, str]:
        """MainPC's env file: MEMORY_HUB_TOKEN, minted on PC2 for the suite's model facts (scope MemoryClient)."""
        token = TokenService(read_secret(secret_path(self.pc2_data))).mint(
            "model-manager-suite", scopes=("MemoryClient",), ttl_s=86400)[0]
        return self.env(MEMORY_HUB_TOKEN=token, **extra)

    def start_memory_hub(self) -> None:
        self.pc2_data.mkdir(parents=True, exist_ok=True)
        log = self.logs / "memory_hub.log"
        starts = log.read_text().count("hub_started") if log.exists() else 0
        self.memory_hub = self.lan.spawn(
            "pc2", [PY, "-m", "agents.memory_hub", "--config", str(PROFILES / "pc2/memory_hub.yaml"),
                    "--data-dir", str(self.pc2_data)],
            log, env=self.env(HOME=str(self.pc2_data)), cwd=self.pc2_data)
        wait_for_line(log, "hub_started", START_TIMEOUT, self.memory_hub, count=starts + 1)

    def start_mainpc(self) -> None:
        self.mainpc_data.mkdir(parents=True, exist_ok=True)
        self.suite = self.lan.spawn(
            "mainpc", [PY, "-m", "agents.model_manager_suite", "--config",
                       str(PROFILES / "mainpc/model_manager_suite.yaml"), "--data-dir", str(self.mainpc_data)],
            self.logs / "model_manager_suite.log",
            env=self.mainpc_env(HOME=str(self.mainpc_data), MODELS_DIR=str(self.models)), cwd=self.mainpc_data)
        wait_for_line(self.logs / "model_manager_suite.log", "hub_started", START_TIMEOUT, self.suite)
        self.forwarder = self.lan.spawn(
            "mainpc",
            [PY, "-m", "agents.hubctl", "forward", "--config", str(PROFILES / "mainpc/hub_forwarder.yaml")],
            self.logs / "forwarder.log", env=self.env())
        wait_for_line(self.logs / "forwarder.log", "forwarder_bound", 60, self.forwarder)

    def start_neighbours(self) -> None:
        for host, kind, out in (("pc2", "collector", self.errors_out), ("mainpc", "twin", self.twin_out)):
            proc = self.lan.spawn(host, [PY, "-m", "tests.deploy.peers", kind, str(out)], self.logs / f"{kind}.log",
                                  env=self.env())
            wait_for_line(out, "listening", 30, proc)

    # -- clients ---------------------------------------------------------------------------------------
    def token(self, data_dir: Path) -> str:
        return TokenService(read_secret(secret_path(data_dir))).mint("deploy-test", scopes=("*",), ttl_s=3600)[0]

    def peer(self, host: str, *args: str, timeout: float = 30.0) -> dict:
        return self.lan.run(host, [PY, "-m", "tests.deploy.peers", *args], timeout=timeout, env=self.env())

    def legacy(self, host: str, address: str, port: int, request: dict, timeout_s: float = 10.0) -> dict:
        return self.peer(host, "legacy", address, str(port), json.dumps(request), str(timeout_s),
                         timeout=timeout_s + 20)

    def native(self, host: str, address: str, port: int, data_dir: Path, agent: str, action: str,
               args: dict | None = None, timeout_s: float = 15.0) -> dict:
        return self.peer(host, "native", f"tcp://{address}:{port}", self.token(data_dir), agent, action,
                         json.dumps(args or {}), str(timeout_s), timeout=timeout_s + 20)

    def http(self, host: str, url: str) -> dict:
        return self.peer(host, "http", url, "10")

    def received(self, path: Path) -> list[Any]:
        lines = path.read_text().splitlines() if path.exists() else []
        return [json.loads(line)["message"] for line in lines if '"message"' in line]


def eventually(probe: Callable[[], Any], accept: Callable[[Any], bool], timeout: float, what: str) -> Any:
    until, last = time.monotonic() + timeout, None
    while time.monotonic() < until:
        last = probe()
        if accept(last):
            return last
        time.sleep(0.5)
    raise AssertionError(f"{what}: not within {timeout}s; last answer {last!r}")


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    lan = Lan(f"hub{os.getpid()}", {"pc2": PC2, "mainpc": MAINPC, "third": THIRD})
    try:
        lan.create()
    except NamespaceUnavailable as exc:
        pytest.skip(f"two-host deployment test needs network namespaces: {exc}")
    dep = Deployment(lan, tmp_path_factory.mktemp("two-hosts"))
    try:
        write_tiny_gguf(dep.models / "tiny-a.gguf", seed=1, name="tiny a")
        write_not_gguf(dep.models / "broken.gguf")
        dep.start_neighbours()
        dep.start_memory_hub()
        dep.start_mainpc()
        yield dep
    finally:
        lan.destroy()


# ------------------------------------------------------------------------------------------------ tests

def test_lan_has_no_default_route_and_the_profiles_are_the_shipped_ones(deployment):
    for host in ("pc2", "mainpc", "third"):
        assert "default" not in deployment.lan.routes(host)
    assert str(PROFILES / "pc2/memory_hub.yaml") in deployment.memory_hub.args
    assert str(PROFILES / "mainpc/model_manager_suite.yaml") in deployment.suite.args
    assert str(PROFILES / "mainpc/hub_forwarder.yaml") in deployment.forwarder.args


def test_forwarded_legacy_ports_on_mainpc_reach_memory_hub_on_pc2(deployment):
    fact = {"action": "add_fact", "topic": "deploy-test", "content": "the hubs run on two hosts"}
    added = deployment.legacy("mainpc", "127.0.0.1", 5715, fact)["reply"]
    assert added["status"] == "success" and added["memory_id"]
    got = deployment.legacy("mainpc", "127.0.0.1", 5715, {"action": "get_fact", "topic": "deploy-test"})["reply"]
    assert got["status"] == "success" and got["fact"]["content"] == "the hubs run on two hosts"
    health = deployment.legacy("mainpc", "127.0.0.1", 6713, {"anything": True})["reply"]
    assert health["status"] in ("ok", "HEALTHY")
    # a MainPC legacy client talking to PC2 directly (MemoryClient's REQ to $PC2_IP:7140)
    probe = deployment.legacy("mainpc", PC2, 7140, {"action": "health_check", "data": {}})["reply"]
    assert probe["status"] == "success"


def test_native_and_http_across_hosts(deployment):
    dep = deployment
    put = dep.native("mainpc", PC2, 7010, dep.pc2_data, "MemoryClient", "kv_set", {"key": "deploy:k", "value": 7})
    assert "result" in put, put
    assert dep.native("mainpc", PC2, 7010, dep.pc2_data, "MemoryClient", "kv_get", {"key": "deploy:k"})[
        "result"]["value"] == 7
    listed = dep.native("pc2", MAINPC, 7011, dep.mainpc_data, "GGUFModelManager", "list_models")["result"]
    assert {"tiny-a", "broken"} <= {m["id"] for m in listed["models"]}
    for host, url in (("mainpc", f"http://{PC2}:7110/health"), ("pc2", f"http://{MAINPC}:7111/health")):
        reply = dep.http(host, url)
        assert reply["status"] == 200 and json.loads(reply["body"])["status"] in ("ok", "degraded"), reply
    # the MainPC profile's AgentTrustScorer endpoint is MemoryHub's legacy port on PC2
    trust = dep.legacy("mainpc", PC2, 7122, {"action": "get_trust_score", "model_id": "tiny-a"})["reply"]
    assert trust["status"] == "success"


def test_allow_list_refuses_the_third_host_and_counts_it(deployment):
    dep = deployment
    refused = dep.legacy("third", PC2, 7140, {"action": "search_memory", "data": {"query": "x"}}, timeout_s=3)
    assert refused == {"timeout": True}
    refused = dep.legacy("third", MAINPC, 5570, {"command": "GET_LOADED_MODELS_STATUS"}, timeout_s=3)
    assert refused == {"timeout": True}
    # the native port takes a token instead: the third host with a valid token is served
    assert dep.native("third", PC2, 7010, dep.pc2_data, "hub", "ping")["result"]["pong"] is True
    metrics = dep.http("pc2", "http://127.0.0.1:7110/metrics")["body"]
    counted = [line for line in metrics.splitlines()
               if line.startswith("hub_refused_peers_total") and THIRD in line]
    assert counted and float(counted[0].rsplit(" ", 1)[1]) >= 1


def test_registration_announces_each_hosts_own_address(deployment):
    dep = deployment

    def registrations() -> dict[str, dict]:
        found = {}
        for message in dep.received(dep.twin_out):
            request = json.loads(message)
            found[request["agent_name"]] = request
        return found

    seen = eventually(registrations, lambda r: {"MemoryHub", "ModelManagerSuite"} <= set(r), 60, "registrations")
    assert seen["MemoryHub"]["registration_data"]["host"] == PC2 and seen["MemoryHub"]["location"] == "PC2"
    assert seen["ModelManagerSuite"]["registration_data"]["host"] == MAINPC
    assert seen["ModelManagerSuite"]["location"] == "MainPC"


def test_error_bus_reports_cross_from_mainpc_to_pc2(deployment):
    dep = deployment
    failed = dep.native("pc2", MAINPC, 7011, dep.mainpc_data, "GGUFModelManager", "load_model",
                        {"model_id": "broken"})
    assert failed["error"] == "conflict"

    def load_reports() -> list[dict]:
        reports = [json.loads(m[len("ERROR:"):]) for m in dep.received(dep.errors_out) if m.startswith("ERROR:")]
        return [r for r in reports if r["error_type"] == "model_load_failed"]

    [report] = eventually(load_reports, bool, 30, "model_load_failed on the PC2 collector")
    assert report["agent"] == "ModelManagerAgent" and report["severity"] == "ERROR"
    assert report["details"]["model_id"] == "broken"


def memory_value(dep: Deployment, key: str) -> Any:
    reply = dep.native("pc2", "127.0.0.1", 7010, dep.pc2_data, "MemoryClient", "kv_get", {"key": key})
    return reply.get("result", {}).get("value")


def test_model_catalogue_is_in_memory_hub_and_hubctl_verify_on_mainpc_finds_only_the_missing_gpu(deployment):
    dep = deployment
    entry = eventually(lambda: memory_value(dep, "models:catalogue:tiny-a"), bool, 60, "catalogue in MemoryHub")
    assert entry["file"] == "tiny-a.gguf" and entry["sha256"] and entry["valid"] is True
    assert memory_value(dep, "models:catalogue:broken")["valid"] is False
    # the operator's checklist on MainPC, shipped profiles, with the env file's MEMORY_HUB_TOKEN
    done = subprocess.run(["ip", "netns", "exec", dep.lan.ns("mainpc"), PY, "-m", "agents.hubctl", "verify",
                           "--host", "mainpc", "--json"], capture_output=True, text=True, timeout=180,
                          env=dep.mainpc_env(), cwd=REPO)
    rows = json.loads(done.stdout)
    failed = {row["check"]: row["detail"] for row in rows if row["result"] == "FAIL"}
    # This MainPC has no GPU while its profile asks for n_gpu_layers -1: the suite says so (health degraded by
    # the gpu_offload check) and that is the only finding of the checklist.
    assert done.returncode == 1 and set(failed) == {"HTTP /health", "hub/health"}, failed
    assert failed["HTTP /health"].endswith("failing: gpu_offload") and failed["hub/health"] == "degraded"
    checks = {row["check"]: row["result"] for row in rows}
    assert checks["model facts in MemoryHub"] == "PASS" and checks["MemoryHub AgentTrustScorer"] == "PASS"
    assert checks["relay 5715 -> 192.168.100.17"] == "PASS"


def test_link_cut_and_recovery_without_restarts(deployment):
    dep = deployment
    pids = (dep.memory_hub.pid, dep.suite.pid, dep.forwarder.pid)
    dep.lan.link("pc2", up=False)
    try:
        cut = dep.legacy("mainpc", "127.0.0.1", 5715, {"action": "get_fact", "topic": "deploy-test"}, timeout_s=2)
        assert cut == {"timeout": True}                        # the cable is really out
        # MainPC keeps working; its model facts wait in the outbox
        loaded = dep.native("mainpc", "127.0.0.1", 7011, dep.mainpc_data, "GGUFModelManager", "load_model",
                            {"model_id": "tiny-a"})
        assert loaded["result"]["model_id"] == "tiny-a", loaded
        time.sleep(2)
    finally:
        dep.lan.link("pc2", up=True)
    back = eventually(lambda: dep.legacy("mainpc", "127.0.0.1", 5715, {"action": "get_fact", "topic": "deploy-test"},
                                         timeout_s=5),
                      lambda r: r.get("reply", {}).get("status") == "success", 60, "forwarded port after the cut")
    assert back["reply"]["fact"]["content"] == "the hubs run on two hosts"
    assert dep.native("mainpc", PC2, 7010, dep.pc2_data, "hub", "ping")["result"]["pong"] is True
    state = eventually(lambda: memory_value(dep, "models:state:tiny-a"), lambda s: bool(s and s["loaded"]), 90,
                       "the load made during the cut, in MemoryHub")
    assert state["event"] == "model.loaded"
    assert (dep.memory_hub.pid, dep.suite.pid, dep.forwarder.pid) == pids
    assert all(p.poll() is None for p in (dep.memory_hub, dep.suite, dep.forwarder))


def test_memory_hub_restart_while_mainpc_keeps_serving(deployment):
    dep = deployment
    assert dep.lan.stop(dep.memory_hub) == 0                  # SIGTERM: drained, exit 0
    # PC2 is down: MainPC still serves its own agents, natively and on its legacy ports
    assert dep.native("mainpc", "127.0.0.1", 7011, dep.mainpc_data, "hub", "ping")["result"]["pong"] is True
    listed = dep.legacy("mainpc", "127.0.0.1", 5575, {"action": "list_models"})["reply"]
    assert listed["status"] == "success"
    assert dep.legacy("mainpc", "127.0.0.1", 5715, {"action": "get_fact", "topic": "deploy-test"},
                      timeout_s=2) == {"timeout": True}
    dep.start_memory_hub()
    back = eventually(lambda: dep.legacy("mainpc", "127.0.0.1", 5715, {"action": "get_fact", "topic": "deploy-test"},
                                         timeout_s=5),
                      lambda r: r.get("reply", {}).get("status") == "success", 60, "forwarded port after the restart")
    assert back["reply"]["fact"]["content"] == "the hubs run on two hosts"      # nothing acknowledged was lost
    assert dep.suite.poll() is None and dep.forwarder.poll() is None
