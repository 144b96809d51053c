"""Model facts kept in MemoryHub: both hubs as processes on this host; MemoryHub stopped and started again while
ModelManagerSuite keeps loading models, so the facts wait in the suite's SQL outbox and arrive afterwards.
"""
from __future__ import annotations

import time
from pathlib import Path

import pytest

from bus.tokens import TokenService, read_secret, secret_path
from tests.support.hubproc import HubProcess
from tests.support.tiny_gguf import write_tiny_gguf

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


def wait_until(probe, timeout: float = 60.0, what: str = "condition"):
    until = time.monotonic() + timeout
    while time.monotonic() < until:
        value = probe()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"{what} not reached within {timeout}s")


def facts_health(suite: HubProcess) -> dict:
    with suite.client() as client:
        return client.call("hub", "health")["checks"]["model_facts"]


def test_facts_reach_memory_hub_and_survive_its_outage(tmp_path: Path):
    models = tmp_path / "models"
    write_tiny_gguf(models / "tiny-a.gguf", seed=1, name="tiny a")
    memory = HubProcess("memory_hub", tmp_path / "pc2")
    memory.start()
    try:
        token = TokenService(read_secret(secret_path(memory.data_dir))).mint(
            "model-manager-suite", scopes=("MemoryClient",), ttl_s=3600)[0]
        config = {"model_facts": {"memory_hub_endpoint": memory.endpoint, "backoff_initial_s": 0.2,
                                  "backoff_max_s": 1.0, "timeout_s": 2.0},
                  "models": {"ram_budget_mb": 400}, "predictive_loader": {"preload_enabled": False}}
        with HubProcess("model_manager_suite", tmp_path / "mainpc", config=config,
                        env={"MODELS_DIR": str(models), "MEMORY_HUB_TOKEN": token}) as suite, \
                memory.client() as reader:
            def kv(key: str):
                with memory.client() as fresh:
                    try:
                        return fresh.call("MemoryClient", "kv_get", {"key": key})["value"]
                    except Exception:
                        return None

            catalogue = wait_until(lambda: kv("models:catalogue:tiny-a"), what="catalogue entry")
            assert catalogue["sha256"] and catalogue["file"] == "tiny-a.gguf" and catalogue["valid"] is True
            versions = reader.call("MemoryClient", "kv_list", {"prefix": "models:version:tiny-a:"})["keys"]
            assert len(versions) == 1

            memory.stop()                                     # MemoryHub down: facts wait in the outbox
            with suite.client() as client:
                client.call("GGUFModelManager", "load_model", {"model_id": "tiny-a"})
                client.call("GGUFModelManager", "unload_model", {"model_id": "tiny-a"})
            waiting = wait_until(lambda: (h := facts_health(suite))["detail"]["last_error"] and h,
                                 what="a failed delivery while MemoryHub is down")
            assert waiting["ok"] is True and waiting["detail"]["pending"] >= 4      # kept, not lost

            memory.start()                                    # same data dir: MemoryHub is back
            state = wait_until(lambda: (s := kv("models:state:tiny-a")) and s["event"] == "model.unloaded" and s,
                               timeout=90, what="state after the outage")
            assert state["loaded"] is False
            wait_until(lambda: facts_health(suite)["detail"]["pending"] == 0, what="outbox drained")
            with memory.client() as fresh:
                events = fresh.call("MemoryClient", "kv_list", {"prefix": "models:event:tiny-a:"})["keys"]
                loaded = [fresh.call("MemoryClient", "kv_get", {"key": key})["value"]["event"] for key in events]
            assert loaded == ["model.loaded", "model.unloaded"]          # in order, each once
    finally:
        memory.stop()


def test_without_a_configured_token_the_suite_mints_one_from_the_shared_secret(tmp_path: Path):
    models = tmp_path / "models"
    write_tiny_gguf(models / "tiny-b.gguf", seed=2, name="tiny b")
    shared = {"secret": "a-secret-both-hubs-share-0123456789abcdef"}
    with HubProcess("memory_hub", tmp_path / "pc2", config={"auth": shared}) as memory:
        config = {"auth": shared, "model_facts": {"memory_hub_endpoint": memory.endpoint, "backoff_initial_s": 0.2,
                                  "backoff_max_s": 1.0, "timeout_s": 2.0},
                  "models": {"ram_budget_mb": 400}, "predictive_loader": {"preload_enabled": False}}
        with HubProcess("model_manager_suite", tmp_path / "mainpc", config=config,
                        env={"MODELS_DIR": str(models)}) as suite:
            def catalogue():
                with memory.client() as reader:
                    try:
                        return reader.call("MemoryClient", "kv_get", {"key": "models:catalogue:tiny-b"})["value"]
                    except Exception:
                        return None

            entry = wait_until(catalogue, what="catalogue entry sent with a minted token")
            assert entry["file"] == "tiny-b.gguf"
            wait_until(lambda: facts_health(suite)["detail"]["pending"] == 0, what="outbox drained")
            assert facts_health(suite)["detail"]["last_error"] is None
