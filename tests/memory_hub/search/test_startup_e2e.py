"""Ready means ready: a MemoryHub started fresh, driven from the moment its ports answer.

Writes and semantic queries sent while the embedding model still loads (legacy 7140 as MemoryClient sends
them, and natively) are all answered correctly: queries wait for the model, writes made meanwhile are
embedded before search reports ready. ``sd_notify READY=1`` comes only once search is ready, and
``hubctl health --wait`` returns 0 then (1 when the time is up).
"""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.support.hubproc import REPO, HubProcess

pytestmark = pytest.mark.slow

MOS_PORT = 7140
GARAGE = "The garage door code is 4471."
DOG = "Biscuit the dog gets his heartworm tablet on the first of each month."


def hubctl(hub: HubProcess, *args: str) -> subprocess.Popen:
    env = {**os.environ, "PORT_OFFSET": str(hub.offset)}
    return subprocess.Popen([sys.executable, "-m", "agents.hubctl", *args], cwd=REPO, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def legacy(hub: HubProcess, action: str, **data) -> dict:
    return hub.legacy_request(MOS_PORT, {"action": action, "data": data}, timeout=120)


def native(hub: HubProcess, agent: str, action: str, args: dict) -> dict:
    with hub.client(timeout=120) as client:
        return client.call(agent, action, args)


def test_fresh_hub_answers_writes_and_queries_sent_while_the_model_loads(tmp_path):
    notify_path = str(tmp_path / "notify.sock")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    listener.bind(notify_path)
    hub = HubProcess("memory_hub", tmp_path / "hub", wait_search=False, env={"NOTIFY_SOCKET": notify_path})
    try:
        hub.start()                                        # returns as soon as `ping` answers
        began = time.monotonic()
        waiter = hubctl(hub, "health", "memory", "--wait", "180", "--data-dir", str(hub.data_dir))
        with ThreadPoolExecutor(max_workers=6) as pool:
            legacy_flow = pool.submit(lambda: [
                legacy(hub, "add_memory", content=GARAGE),
                legacy(hub, "semantic_search", query="How do I open where the car is parked?", k=3)])
            native_add = pool.submit(native, hub, "MemoryOrchestratorService", "add_memory", {"content": DOG})
            native_hybrid = pool.submit(lambda: (native_add.result(), native(
                hub, "UnifiedMemoryReasoningAgent", "semantic_search",
                {"query": "when does the pet need his medicine", "k": 3}))[1])
            native_mos = pool.submit(lambda: (native_add.result(), native(
                hub, "MemoryOrchestratorService", "semantic_search",
                {"query": "when does the pet need his medicine", "k": 3}))[1])
            with hub.client() as client:
                health = client.call("hub", "health")
            sent_within = time.monotonic() - began
            listener.setblocking(False)
            with pytest.raises(BlockingIOError):
                listener.recv(4096)                        # no READY=1 while search is loading
            added, found = legacy_flow.result(timeout=180)
            hybrid, mos = native_hybrid.result(timeout=180), native_mos.result(timeout=180)
        assert sent_within < 1.0                           # everything went out while the model loaded:
        assert not health["checks"]["search"]["ok"]        # search was not ready when the hub first answered
        assert health["status"] == "degraded"

        assert added["status"] == "success"
        assert found["status"] == "success" and "fall" not in found["message"]
        assert GARAGE in [r["content"] for r in found["results"]]
        assert native_add.result()["memory_id"]
        assert hybrid["results"][0]["memory"]["content"] == DOG
        assert mos["mode"] == "hybrid" and mos["results"][0]["content"] == DOG

        listener.setblocking(True)
        listener.settimeout(120)
        assert b"READY=1" in listener.recv(4096)
        with hub.client() as client:
            search = client.call("hub", "health")["checks"]["search"]
        assert search["ok"] and search["detail"]["embed_backend"] == "onnx"   # the hub's default backend
        assert waiter.wait(180) == 0, waiter.stderr.read()
        assert "search" in waiter.stdout.read()
    finally:
        hub.stop()
        listener.close()


def test_hubctl_health_wait_gives_up_with_exit_1():
    waiter = subprocess.run([sys.executable, "-m", "bus.cli", "health", "127.0.0.1:1", "--wait", "1",
                             "--timeout", "0.3"], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert waiter.returncode == 1 and "no health reply" in waiter.stderr
