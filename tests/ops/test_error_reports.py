"""ErrorBus reports like the legacy agents sent them, received by a real SUB socket (legacy-protocol.md §0.2).

Hubs run as processes (``HubProcess``) with their ErrorBus endpoint pointed at a SUB the test binds; Redis
outages use a private redis-server the test kills and restarts.
"""
from __future__ import annotations

import json
import time

import pytest
import zmq

from agents.memory_hub.stores.embedded_redis import EmbeddedRedis
from agents.memory_hub.stores.redis_store import RedisStore
from bus.error_reports import ErrorReports, ErrorReportSettings, RateLimit
from bus.errors import HubError
from bus.neighbours import Neighbours, NeighboursSettings
from bus.settings import from_mapping
from tests.ops.conftest import fast_backoff
from tests.support.hubproc import HubProcess
from tests.support.tiny_gguf import write_not_gguf, write_tiny_gguf


def bound_sub(context: zmq.Context) -> tuple[zmq.Socket, str]:
    sub = context.socket(zmq.SUB)
    sub.setsockopt_string(zmq.SUBSCRIBE, "ERROR:")
    port = sub.bind_to_random_port("tcp://127.0.0.1")
    return sub, f"tcp://127.0.0.1:{port}"


def next_report(sub: zmq.Socket, timeout_s: float = 15.0) -> dict:
    if not sub.poll(int(timeout_s * 1000)):
        raise AssertionError("no ErrorBus report received")
    text = sub.recv_string()
    assert text.startswith("ERROR:")
    return json.loads(text[len("ERROR:"):])


def reports_until(sub: zmq.Socket, error_type: str, timeout_s: float = 20.0) -> list[dict]:
    """Every report received up to and including the first of ``error_type``."""
    seen, until = [], time.monotonic() + timeout_s
    while time.monotonic() < until:
        report = next_report(sub, max(0.1, until - time.monotonic()))
        seen.append(report)
        if report["error_type"] == error_type:
            return seen
    raise AssertionError(f"no {error_type} report; got {[r['error_type'] for r in seen]}")


def drain(sub: zmq.Socket, quiet_s: float = 1.0) -> list[dict]:
    out = []
    while sub.poll(int(quiet_s * 1000)):
        out.append(json.loads(sub.recv_string()[len("ERROR:"):]))
    return out


def error_bus_config(endpoint: str, **reports) -> dict:
    return {"neighbours": {"apply_port_offset": False, "backoff": fast_backoff(),
                           "error_bus": {"enabled": True, "endpoints": [endpoint],
                                         "reports": {"window_s": 60.0, **reports}}}}


def error_bus_settings(endpoint: str) -> NeighboursSettings:
    return from_mapping(NeighboursSettings, {"error_bus": {"enabled": True, "endpoints": [endpoint]},
                                             "registration": {"enabled": False}, "backoff": fast_backoff()})


def test_rate_limit_admits_per_type_and_counts_what_it_refused():
    now = [0.0]
    limit = RateLimit(per_type=2, window_s=10.0, clock=lambda: now[0])
    assert [limit.admit("a")[0] for _ in range(4)] == [True, True, False, False]
    assert limit.admit("b") == (True, 0)                    # another type has its own budget
    now[0] = 10.5
    assert limit.admit("a") == (True, 2)                     # the window moved: two were suppressed


def test_echo_hub_reports_handler_exceptions_native_and_legacy_rate_limited(tmp_path, zmq_context):
    sub, endpoint = bound_sub(zmq_context)
    try:
        with HubProcess("echo_hub", tmp_path, module="tests.bus.echo_hub",
                        config=error_bus_config(endpoint, per_type=3)) as hub:
            with hub.client() as client:
                for _ in range(10):                          # a flood of failing requests
                    with pytest.raises(HubError):
                        client.call("EchoAgent", "fail", {"code": "internal"})
                with pytest.raises(HubError):
                    client.call("EchoAgent", "fail", {"code": "unavailable"})
            legacy = hub.legacy_request(7102, {"action": "fail"})
            assert legacy == {"status": "error", "error": "legacy handler bug"}   # BaseAgent's reply, as before
            received = drain(sub, 3.0)
    finally:
        sub.close(linger=0)
    by_type: dict[str, list[dict]] = {}
    for report in received:
        by_type.setdefault(report["error_type"], []).append(report)
    assert len(by_type["internal"]) == 3                     # 10 failures, 3 per window reach the bus
    assert by_type["internal"][0]["severity"] == "ERROR" and by_type["internal"][0]["agent"] == "EchoAgent"
    assert by_type["unavailable"][0]["severity"] == "WARNING"
    [legacy_report] = by_type["legacy_handler_exception"]
    assert legacy_report["agent"] == "EchoAgent" and legacy_report["severity"] == "ERROR"
    assert legacy_report["details"]["port"] == 7102 and "legacy handler bug" in legacy_report["message"]


def test_suppressed_count_rides_on_the_next_report_after_the_window(zmq_context):
    sub, endpoint = bound_sub(zmq_context)
    neighbours = Neighbours(error_bus_settings(endpoint), zmq_context, "MemoryHub")
    reports = ErrorReports(neighbours.report_error, ErrorReportSettings(per_type=2, window_s=0.5), "MemoryHub")
    neighbours.start()
    try:
        sent = [reports.report("bad_request", f"bad {i}", "WARNING") for i in range(7)]
        assert sent == [True, True] + [False] * 5
        time.sleep(0.6)
        assert reports.report("bad_request", "bad again", "WARNING")
        received = [next_report(sub) for _ in range(3)]
    finally:
        neighbours.stop()
        sub.close(linger=0)
    assert [r["message"] for r in received] == ["bad 0", "bad 1", "bad again"]
    assert received[2]["details"] == {"suppressed": 5} and received[2]["agent"] == "MemoryHub"


def test_redis_outage_and_reconnect_are_reported_once_each(tmp_path, zmq_context):
    server = EmbeddedRedis(tmp_path / "redis")
    store = RedisStore(server.start())
    sub, endpoint = bound_sub(zmq_context)
    neighbours = Neighbours(error_bus_settings(endpoint), zmq_context, "MemoryHub")
    reports = ErrorReports(neighbours.report_error, ErrorReportSettings(), "MemoryHub", watched_checks=("redis",))
    checks = {"redis": store.health, "search": lambda: (False, "not watched")}
    neighbours.start()
    try:
        reports.check_once(checks)                           # healthy: nothing to say
        server.kill()
        reports.check_once(checks)
        reports.check_once(checks)                           # still down: not reported twice
        server.start()
        reports.check_once(checks)
        down, back = next_report(sub), next_report(sub)
        assert drain(sub, 0.5) == []
    finally:
        neighbours.stop()
        sub.close(linger=0)
        store.close()
        server.stop()
    assert (down["error_type"], down["severity"], down["agent"]) == ("redis_unavailable", "ERROR", "MemoryHub")
    assert (back["error_type"], back["severity"]) == ("redis_reconnected", "INFO")


def test_failed_model_load_and_failed_evaluation_reach_the_error_bus(tmp_path, zmq_context):
    models = tmp_path / "models"
    write_not_gguf(models / "junk.gguf")
    write_tiny_gguf(models / "tiny-a.gguf", seed=1, name="tiny a")
    sub, endpoint = bound_sub(zmq_context)
    config = {**error_bus_config(endpoint), "models": {"ram_budget_mb": 1}}     # tiny-a cannot fit
    try:
        with HubProcess("model_manager_suite", tmp_path / "data", config=config,
                        env={"MODELS_DIR": str(models)}) as hub, hub.client() as client:
            with pytest.raises(HubError):
                client.call("GGUFModelManager", "load_model", {"model_id": "junk"})
            load = reports_until(sub, "model_load_failed")[-1]
            job = client.call("ModelEvaluationFramework", "evaluate", {"model_id": "tiny-a"})
            failed = reports_until(sub, "evaluation_failed")[-1]
    finally:
        sub.close(linger=0)
    assert load["agent"] == "ModelManagerAgent" and load["severity"] == "ERROR"
    assert load["details"]["model_id"] == "junk" and "not loadable" in load["message"]
    assert failed["agent"] == "ModelEvaluationFramework" and failed["details"]["model_id"] == "tiny-a"
    assert failed["details"]["eval_id"] == job["eval_id"]
