"""`hubctl verify` against real hub processes: everything passes on healthy hubs, failures are reported."""
from __future__ import annotations

import argparse
import subprocess
import sys
import threading
import time

import pytest
import yaml

from agents.verify import PROBES, add_arguments, run
from bus.forwarder import Forwarder, ForwarderSettings
from tests.support.hubproc import REPO, HubProcess, free_offset
from tests.support.tiny_gguf import write_tiny_gguf


def verify_args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser.parse_args(list(argv))


@pytest.fixture(scope="module")
def dev_hubs(tmp_path_factory):
    """Both hubs on one host with one PORT_OFFSET, as `make run` starts them."""
    offset = free_offset()
    with HubProcess("memory_hub", tmp_path_factory.mktemp("dev_memory"), offset=offset) as memory, \
            HubProcess("model_manager_suite", tmp_path_factory.mktemp("dev_models"), offset=offset) as models:
        yield memory, models


def failures(checklist) -> list:
    return [row for row in checklist.rows if row.result == "FAIL"]


def test_dev_checklist_passes_on_both_hubs(dev_hubs):
    memory, _ = dev_hubs
    checklist = run(verify_args("--host", "dev", "--offset", str(memory.offset)), {})
    assert failures(checklist) == []
    checks = {(row.hub, row.check) for row in checklist.rows}
    for hub in ("MemoryHub", "ModelManagerSuite"):
        for check in ("port native", "port http", "port events", "HTTP /health", "hub/health", "metrics",
                      "error reporting", "errors counted"):
            assert (hub, check) in checks
    assert ("MemoryHub", "database") in checks and ("MemoryHub", "redis") in checks
    for agent, (request, _) in PROBES.items():
        assert any(check == f"legacy {agent} {request['action']}" for _, check in checks), agent
        assert any(check == f"legacy {agent} health port" for _, check in checks), agent
    assert ("ModelManagerSuite host", "MemoryHub ping") in checks


def test_hubctl_verify_prints_the_table_and_exits_zero(dev_hubs):
    memory, _ = dev_hubs
    proc = subprocess.run([sys.executable, "-m", "agents.hubctl", "verify", "--host", "dev", "--offset",
                           str(memory.offset)], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].split()[:3] == ["RESULT", "HUB", "CHECK"] and " 0 failed" in lines[-1]
    assert any(line.startswith("PASS") and "legacy CacheManager get" in line for line in lines)


def test_a_legacy_agent_missing_on_the_hub_fails_the_checklist(tmp_path):
    config = {"legacy": {"agents": {"CacheManager": {"enabled": False}}}}
    with HubProcess("memory_hub", tmp_path / "pc2", config=config) as hub:
        proc = subprocess.run([sys.executable, "-m", "agents.hubctl", "verify", "--host", "pc2", "--offset",
                               str(hub.offset), "--timeout", "4"], cwd=REPO, capture_output=True, text=True,
                              timeout=120)
        assert proc.returncode == 1
        failed = [line for line in proc.stdout.splitlines() if line.startswith("FAIL")]
        assert failed and all("CacheManager" in line for line in failed)
        # with the hub's own profile the agent is reported as switched off, and the rest passes
        checklist = run(verify_args("--host", "pc2", "--offset", str(hub.offset), "--memory-config",
                                    str(hub.data_dir / "memory_hub.test.yaml")), {})
        assert failures(checklist) == []
        assert [r.result for r in checklist.rows if r.check == "legacy CacheManager"] == ["SKIP"]


def test_mainpc_checklist_covers_the_forwarder_and_memory_hub_on_pc2(tmp_path):
    mainpc, pc2 = free_offset(), None
    while pc2 is None or pc2 == mainpc:
        pc2 = free_offset()
    forwarder_config = tmp_path / "hub_forwarder.yaml"
    forwarder_config.write_text(yaml.safe_dump({"forwarder": {"remote_host": "127.0.0.1",
                                                              "remote_port_offset": pc2, "ports": [5713, 5715]}}))
    write_tiny_gguf(tmp_path / "models" / "tiny-a.gguf", seed=1, name="tiny a")
    with HubProcess("memory_hub", tmp_path / "pc2", offset=pc2) as memory, \
            HubProcess("model_manager_suite", tmp_path / "mainpc", offset=mainpc,
                       config={"model_facts": {"memory_hub_endpoint": memory.endpoint}},
                       env={"MODELS_DIR": str(tmp_path / "models"),
                            "MEMORY_HUB_TOKEN": memory.token(("MemoryClient",))}) as models:
        with models.client() as client:          # the catalogue is sent in the background: let it arrive
            until = time.monotonic() + 60
            while client.call("hub", "health")["checks"]["model_facts"]["detail"]["pending"]:
                assert time.monotonic() < until, "model facts never reached MemoryHub"
                time.sleep(0.2)
        forwarder = Forwarder(ForwarderSettings(remote_port_offset=pc2, ports=(5713, 5715)), offset=mainpc)
        forwarder.bind()
        thread = threading.Thread(target=forwarder.serve_forever, kwargs={"poll_ms": 50}, daemon=True)
        thread.start()
        try:
            checklist = run(verify_args("--host", "mainpc", "--offset", str(mainpc), "--models-config",
                                        str(models.data_dir / "model_manager_suite.test.yaml"),
                                        "--forwarder-config", str(forwarder_config)),
                            {"MEMORY_HUB_TOKEN": models.extra_env["MEMORY_HUB_TOKEN"]})   # the unit's env file
        finally:
            forwarder.request_stop()
            thread.join(5)
            forwarder.close()
    assert failures(checklist) == []
    hubs = {row.hub for row in checklist.rows}
    assert hubs == {"ModelManagerSuite", "ModelManagerSuite host", "forwarder"}
    assert [r.check for r in checklist.rows if r.hub == "forwarder"] == ["relay 5713 -> 127.0.0.1",
                                                                        "relay 5715 -> 127.0.0.1"]
    assert [r.result for r in checklist.rows if r.hub == "ModelManagerSuite host"] == ["PASS", "PASS"]
    [facts] = [r for r in checklist.rows if r.check == "model facts in MemoryHub"]
    assert facts.result == "PASS" and facts.detail.startswith("1/1 models"), facts


def test_a_hub_that_is_not_running_fails_fast():
    checklist = run(verify_args("--host", "pc2", "--offset", str(free_offset()), "--timeout", "1"), {})
    assert [(r.check, r.result) for r in checklist.rows] == [("port native", "FAIL"), ("port http", "FAIL"),
                                                             ("port events", "FAIL"), ("hub running", "FAIL")]
    assert checklist.failed
