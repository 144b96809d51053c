"""`hubctl forward` against a real MemoryHub process on loopback, the relay on another PORT_OFFSET."""
from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import yaml
import zmq

from agents.hubs import MAINPC_MEMORY_PORTS
from bus.forwarder import Forwarder, ForwarderSettings
from tests.support.hubproc import REPO, HubProcess, free_offset

PORTS = {5713: "MemoryClient", 6713: "MemoryClient", 5574: "SessionMemoryAgent", 6583: "SessionMemoryAgent",
         5715: "KnowledgeBase", 6715: "KnowledgeBase"}


@pytest.fixture(scope="module")
def memory_hub(tmp_path_factory):
    with HubProcess("memory_hub", tmp_path_factory.mktemp("pc2")) as hub:
        yield hub


def other_offset(hub: HubProcess) -> int:
    offset = free_offset()
    while offset == hub.offset:
        offset = free_offset()
    return offset


def legacy_request(port: int, request: object, timeout: float = 20.0) -> dict:
    sock = zmq.Context.instance().socket(zmq.REQ)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.RCVTIMEO, int(timeout * 1000))
    try:
        sock.connect(f"tcp://127.0.0.1:{port}")
        sock.send(json.dumps(request).encode())
        return json.loads(sock.recv())
    finally:
        sock.close()


@pytest.fixture
def relay(memory_hub):
    settings = ForwarderSettings(ports=MAINPC_MEMORY_PORTS, remote_port_offset=memory_hub.offset)
    forwarder = Forwarder(settings, offset=other_offset(memory_hub))
    forwarder.bind()
    thread = threading.Thread(target=forwarder.serve_forever, kwargs={"poll_ms": 50}, daemon=True)
    thread.start()
    yield forwarder
    forwarder.request_stop()
    thread.join(5)
    forwarder.close()


def signatures(hub: HubProcess) -> dict[int, frozenset]:
    """What each legacy port answers to a health_check, as the set of reply keys (values carry times)."""
    return {port: frozenset(hub.legacy_request(port, {"action": "health_check"})) for port in PORTS}


def test_legacy_clients_on_mainpc_ports_reach_memory_hub(relay, memory_hub):
    expected = signatures(memory_hub)
    assert len(set(expected.values())) > 2                      # the agents answer differently
    for port in PORTS:
        reply = legacy_request(port + relay.offset, {"action": "health_check"})
        assert frozenset(reply) == expected[port], (port, reply)
    fact = legacy_request(5715 + relay.offset, {"action": "add_fact", "topic": "relay", "content": "via MainPC"})
    assert fact["status"] == "success"
    direct = memory_hub.legacy_request(5715, {"action": "get_fact", "topic": "relay"})
    assert direct["status"] == "success" and "via MainPC" in json.dumps(direct)
    status = relay.status()["relays"][5715 + relay.offset]
    assert status["remote"] == f"tcp://127.0.0.1:{5715 + memory_hub.offset}" and status["replies"] >= 2


def test_concurrent_clients_each_get_their_own_reply(relay, memory_hub):
    expected = signatures(memory_hub)

    def ask(i: int) -> tuple[int, frozenset]:
        port = list(PORTS)[i % len(PORTS)]
        return port, frozenset(legacy_request(port + relay.offset, {"action": "health_check"}))

    with ThreadPoolExecutor(max_workers=12) as pool:
        results = list(pool.map(ask, range(60)))
    assert all(keys == expected[port] for port, keys in results)


def test_undecodable_request_gets_the_legacy_error_through_the_relay(relay):
    sock = zmq.Context.instance().socket(zmq.REQ)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.RCVTIMEO, 20000)
    sock.connect(f"tcp://127.0.0.1:{5713 + relay.offset}")
    sock.send(b"{broken")
    assert json.loads(sock.recv()) == {"status": "error", "error": "Invalid JSON request"}
    sock.close()


def test_a_port_in_use_is_skipped_not_fatal(memory_hub):
    offset = other_offset(memory_hub)
    blocker = zmq.Context.instance().socket(zmq.REP)
    blocker.bind(f"tcp://127.0.0.1:{5713 + offset}")
    forwarder = Forwarder(ForwarderSettings(ports=(5713, 5715), remote_port_offset=memory_hub.offset),
                          offset=offset)
    try:
        relays = forwarder.bind()
        assert [r.local_port for r in relays] == [5715 + offset] and forwarder.failed == [5713 + offset]
    finally:
        forwarder.close()
        blocker.close(linger=0)


def test_hubctl_forward_process_relays_and_stops_on_sigterm(memory_hub, tmp_path):
    offset = other_offset(memory_hub)
    config = tmp_path / "hub_forwarder.yaml"
    config.write_text(yaml.safe_dump({"forwarder": {"remote_host": "127.0.0.1",
                                                    "remote_port_offset": memory_hub.offset,
                                                    "ports": [5574, 6583]},
                                      "logging": {"level": "info"}}))
    env = {"PORT_OFFSET": str(offset), "PATH": "/usr/bin:/bin"}
    proc = subprocess.Popen([sys.executable, "-m", "agents.hubctl", "forward", "--config", str(config)],
                            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        reply = _retry(lambda: legacy_request(6583 + offset, {"action": "health_check"}, timeout=2))
        assert "SessionMemoryAgent" in json.dumps(reply)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0
        assert b"forwarder_stopped" in proc.stdout.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)


def _retry(fn, attempts: int = 30):
    for attempt in range(attempts):
        try:
            return fn()
        except zmq.Again:
            if attempt == attempts - 1:
                raise
            time.sleep(0.2)
