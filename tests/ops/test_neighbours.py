"""Neighbours against real ZeroMQ peers: an ErrorBus SUB, SystemDigitalTwin / CoreOrchestrator REPs."""
from __future__ import annotations

import json
import threading
import time

import zmq

from bus.neighbours import AgentInfo, Neighbours, NeighboursSettings, agents_from_handlers
from bus.settings import from_mapping
from tests.ops.conftest import fast_backoff, free_port, receive_json

HUB = AgentInfo("MemoryHub", 7010, 7110, "MemoryHub", ("hub",))
CACHE = AgentInfo("CacheManager", 7102, 8102, "MemoryHub", ("basic_agent",))


def settings(endpoints: list[str], sdt: str = "", orchestrator: str = "", **registration) -> NeighboursSettings:
    return from_mapping(NeighboursSettings, {
        "error_bus": {"enabled": bool(endpoints), "endpoints": endpoints, "backlog": 100},
        "registration": {"enabled": bool(sdt or orchestrator), "system_digital_twin": sdt,
                         "core_orchestrator": orchestrator, "location": "PC2", "timeout_s": 0.3, **registration},
        "backoff": fast_backoff()})


def error_message(sub: zmq.Socket, timeout_s: float = 10.0) -> dict:
    if not sub.poll(int(timeout_s * 1000)):
        raise AssertionError("no error report received")
    text = sub.recv_string()
    assert text.startswith("ERROR:")
    return json.loads(text[len("ERROR:"):])


def test_error_reports_reach_a_legacy_sub_in_the_legacy_format(zmq_context):
    sub = zmq_context.socket(zmq.SUB)
    port = sub.bind_to_random_port("tcp://127.0.0.1")
    sub.setsockopt_string(zmq.SUBSCRIBE, "ERROR:")
    neighbours = Neighbours(settings([f"tcp://127.0.0.1:{port}"]), zmq_context, "MemoryHub")
    neighbours.start()
    try:
        neighbours.report_error("legacy_bind_failed", "port 7102 in use")      # before the SUB subscribed
        neighbours.report_error("internal", "boom", "CRITICAL", agent="CacheManager", details={"port": 7102})
        first, second = error_message(sub), error_message(sub)
    finally:
        neighbours.stop()
        sub.close(linger=0)
    assert set(first) == {"timestamp", "agent", "error_type", "message", "severity"}
    assert first["agent"] == "MemoryHub" and first["error_type"] == "legacy_bind_failed"
    assert first["message"] == "port 7102 in use" and first["severity"] == "ERROR"
    assert abs(first["timestamp"] - time.time()) < 60
    assert second["agent"] == "CacheManager" and second["severity"] == "CRITICAL"
    assert second["details"] == {"port": 7102}


def test_a_missing_error_bus_is_retried_and_gets_the_reports_when_it_appears(zmq_context):
    port = free_port()
    neighbours = Neighbours(settings([f"tcp://127.0.0.1:{port}"]), zmq_context, "ModelManagerSuite")
    neighbours.start()
    sub = None
    try:
        neighbours.report_error("model_load_failed", "no such file")          # nobody listens: no exception
        status = neighbours.status()["error_bus"][f"tcp://127.0.0.1:{port}"]
        assert status["subscribed"] is False
        sub = zmq_context.socket(zmq.SUB)
        sub.setsockopt_string(zmq.SUBSCRIBE, "")
        sub.bind(f"tcp://127.0.0.1:{port}")
        report = error_message(sub)
        assert report["error_type"] == "model_load_failed" and report["agent"] == "ModelManagerSuite"
        _wait(lambda: neighbours.status()["error_bus"][f"tcp://127.0.0.1:{port}"]["sent"] == 1)
    finally:
        neighbours.stop()
        if sub is not None:
            sub.close(linger=0)


def test_registers_hub_and_agents_with_system_digital_twin_as_base_agent_did(zmq_context):
    rep = zmq_context.socket(zmq.REP)
    port = rep.bind_to_random_port("tcp://127.0.0.1")
    neighbours = Neighbours(settings([], sdt=f"tcp://127.0.0.1:{port}", host="10.0.0.2"), zmq_context,
                            "MemoryHub", [HUB, CACHE])
    neighbours.start()
    received = []
    try:
        for _ in range(2):
            received.append(receive_json(rep, 10))
            rep.send_json({"status": "success"})
        _wait(lambda: not neighbours.registrars[0].pending)
    finally:
        neighbours.stop()
        rep.close(linger=0)
    hub, cache = received
    assert set(hub) == {"action", "agent_name", "status", "location", "registration_data", "source_agent",
                        "request_id", "timestamp"}
    assert hub["action"] == "register_agent" and hub["status"] == "HEALTHY" and hub["location"] == "PC2"
    assert hub["agent_name"] == hub["source_agent"] == "MemoryHub"
    data = cache["registration_data"]
    assert set(data) == {"agent_id", "agent_type", "host", "port", "health_check_port", "capabilities",
                         "dependencies", "metadata"}
    assert (data["agent_id"], data["port"], data["health_check_port"], data["host"]) == ("CacheManager", 7102,
                                                                                         8102, "10.0.0.2")
    assert neighbours.status()["registration"]["SystemDigitalTwin"]["registered"] == ["MemoryHub", "CacheManager"]


def test_absent_orchestrator_is_retried_with_backoff_until_it_answers(zmq_context):
    port = free_port()
    neighbours = Neighbours(settings([], orchestrator=f"tcp://127.0.0.1:{port}", agents=False), zmq_context,
                            "MemoryHub", [HUB, CACHE])
    neighbours.start()
    rep = None
    try:
        _wait(lambda: neighbours.registrars[0].backoff.attempts >= 2)       # timed out twice, still trying
        assert neighbours.status()["registration"]["CoreOrchestrator"]["pending"] == ["MemoryHub"]
        rep = zmq_context.socket(zmq.REP)
        rep.bind(f"tcp://127.0.0.1:{port}")
        request = receive_json(rep, 10)
        rep.send_json({"status": "success"})
        _wait(lambda: not neighbours.registrars[0].pending)
        assert request["agent_name"] == "MemoryHub"
    finally:
        neighbours.stop()
        if rep is not None:
            rep.close(linger=0)


def test_an_error_reply_is_retried_and_stop_is_prompt(zmq_context):
    rep = zmq_context.socket(zmq.REP)
    port = rep.bind_to_random_port("tcp://127.0.0.1")
    neighbours = Neighbours(settings([], sdt=f"tcp://127.0.0.1:{port}"), zmq_context, "MemoryHub", [HUB])
    neighbours.start()
    try:
        receive_json(rep, 10)
        rep.send_json({"status": "error", "error": "registry full"})
        receive_json(rep, 10)                                              # asked again after backoff
        rep.send_json({"status": "success"})
        _wait(lambda: not neighbours.registrars[0].pending)
        assert "registry full" in neighbours.status()["registration"]["SystemDigitalTwin"]["last_error"]
    finally:
        stopper = threading.Thread(target=neighbours.stop)
        stopper.start()
        stopper.join(10)
        rep.close(linger=0)
    assert not stopper.is_alive()


def test_agents_from_handlers_lists_hub_then_legacy_agents():
    from agents.memory_hub.hub import HANDLER_CLASSES

    infos = agents_from_handlers(HANDLER_CLASSES, "MemoryHub", 7010, 7110, offset=100)
    assert infos[0] == AgentInfo("MemoryHub", 7110, 7210, "MemoryHub", ("hub",))
    by_name = {info.name: info for info in infos}
    assert by_name["MemoryOrchestratorService"].port == 7240
    assert by_name["CacheManager"].health_port == 8202
    assert len(infos) == 1 + len([c for c in HANDLER_CLASSES if c.legacy_ports])


def test_disabled_neighbours_do_nothing(zmq_context):
    disabled = from_mapping(NeighboursSettings, {"error_bus": {"enabled": False}, "registration": {"enabled": False}})
    neighbours = Neighbours(disabled, zmq_context, "MemoryHub", [HUB])
    neighbours.start()
    neighbours.report_error("x", "y")
    neighbours.stop()
    assert neighbours.status() == {"error_bus": {}, "registration": {}}
    assert neighbours.health_check()[0] is True


def _wait(predicate, timeout: float = 10.0) -> None:
    until = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > until:
            raise AssertionError("condition not reached")
        time.sleep(0.02)


def test_port_offset_shifts_error_bus_and_registration_endpoints(zmq_context):
    offset = 1000
    sub = zmq_context.socket(zmq.SUB)
    sub.setsockopt_string(zmq.SUBSCRIBE, "ERROR:")
    sub_port = sub.bind_to_random_port("tcp://127.0.0.1", min_port=20000, max_port=40000)
    rep = zmq_context.socket(zmq.REP)
    rep_port = rep.bind_to_random_port("tcp://127.0.0.1", min_port=20000, max_port=40000)
    # configured as the production ports are written; the hub's PORT_OFFSET moves them
    config = settings([f"tcp://127.0.0.1:{sub_port - offset}"], sdt=f"tcp://127.0.0.1:{rep_port - offset}",
                      agents=False)
    neighbours = Neighbours(config, zmq_context, "MemoryHub", offset=offset)
    neighbours.start([HUB])
    try:
        neighbours.report_error("model_load_failed", "x")
        report = error_message(sub)
        request = receive_json(rep, 10)
        rep.send_json({"status": "success"})
        _wait(lambda: not neighbours.registrars[0].pending)
    finally:
        neighbours.stop()
        sub.close(linger=0)
        rep.close(linger=0)
    assert report["error_type"] == "model_load_failed" and request["agent_name"] == "MemoryHub"
    assert set(neighbours.status()["error_bus"]) == {f"tcp://127.0.0.1:{sub_port}"}
