"""ModelEvaluationFramework in a ModelManagerSuite process with tiny GGUF models: every legacy action on port
7220 and the health port 7221 as legacy clients sent them (REQ + JSON), invalid records refused, the
evaluation jobs through the native port and the seed routes (eval.finished on PUB), an A/B job, bad input,
and a kill -9 in the middle of a job (the job is failed "interrupted by restart", queued jobs resume, the
records and the PredictiveLoader usage survive)."""
from __future__ import annotations

import math
import time
import uuid
from pathlib import Path

import msgpack
import pytest
import zmq

from bus.errors import BadRequest, Conflict, NotFound
from tests.support.hubproc import HubProcess
from tests.support.tiny_gguf import write_tiny_gguf

MEF = 7220
CYCLE = "123e4567-e89b-12d3-a456-426614174001"
GOOD = {"model_name": "ChitChatLLM_v2", "cycle_id": CYCLE, "trust_score": 0.92, "accuracy": 0.89, "f1_score": 0.87,
        "avg_latency_ms": 120.5, "evaluation_timestamp": "2026-07-01T15:00:00Z",
        "comparison_data": {"previous_version": "ChitChatLLM_v1", "trust_score_delta": 0.05}}


def hub_config(models: Path) -> dict:
    return {"models": {"dirs": [str(models)], "ram_budget_mb": 400, "overhead_mb": 64.0, "n_ctx": 256,
                       "n_threads": 1, "rescan_interval_s": 0.0},
            "predictive_loader": {"preload_enabled": False},
            "model_evaluation": {"max_tokens": 4, "bootstrap_samples": 200, "poll_interval_s": 0.2}}


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("mef-hub")
    for index, name in enumerate(("tiny-a", "tiny-b")):
        write_tiny_gguf(base / "models" / f"{name}.gguf", seed=index + 1, name=name)
    return base


@pytest.fixture(scope="module")
def hub(base: Path):
    with HubProcess("model_manager_suite", base / "data", config=hub_config(base / "models")) as process:
        yield process


def wait_done(client, eval_id: str, timeout_s: float = 120.0) -> dict:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        status = client.route("GET", f"/evaluate/{eval_id}/status")
        if status["status"] in ("finished", "failed"):
            return status
        time.sleep(0.1)
    raise AssertionError(f"evaluation {eval_id} did not finish: {status}")


# ------------------------------------------------------------------------------------ legacy
def test_legacy_metrics(hub):
    logged = hub.legacy_request(MEF, {"action": "log_performance_metric", "metric": {
        "agent_name": "ChitChatAgent", "metric_name": "response_time_ms", "value": 245.7,
        "timestamp": "2026-07-01T12:05:00", "context": {"request_id": "req-xyz-123"}}})
    assert logged["status"] == "success" and uuid.UUID(logged["metric_id"])
    hub.legacy_request(MEF, {"action": "log_performance_metric", "metric": {
        "agent_name": "ChitChatAgent", "metric_name": "response_time_ms", "value": 100}})
    hub.legacy_request(MEF, {"action": "log_performance_metric", "metric": {
        "agent_name": "Other", "metric_name": "cpu", "value": 1}})
    reply = hub.legacy_request(MEF, {"action": "get_performance_metrics", "agent_name": "ChitChatAgent"})
    assert reply["status"] == "success" and len(reply["metrics"]) == 2
    assert reply["metrics"][1] == {"metric_id": logged["metric_id"], "agent_name": "ChitChatAgent",
                                   "metric_name": "response_time_ms", "value": 245.7,
                                   "timestamp": "2026-07-01T12:05:00", "context": {"request_id": "req-xyz-123"}}
    assert len(hub.legacy_request(MEF, {"action": "get_performance_metrics", "limit": 1})["metrics"]) == 1
    assert hub.legacy_request(MEF, {"action": "get_performance_metrics", "metric_name": "cpu"})["metrics"][0][
        "agent_name"] == "Other"


def test_legacy_evaluations_and_stats(hub):
    logged = hub.legacy_request(MEF, {"action": "log_model_evaluation", "evaluation": GOOD})
    assert logged["status"] == "success" and uuid.UUID(logged["evaluation_id"])
    reply = hub.legacy_request(MEF, {"action": "get_model_evaluation_scores", "model_name": "ChitChatLLM_v2"})
    assert reply["status"] == "success"
    assert reply["evaluations"] == [{**GOOD, "evaluation_id": logged["evaluation_id"]}]
    stats = hub.legacy_request(MEF, {"action": "get_stats"})
    assert stats["status"] == "success" and stats["metrics"]["trust_score_updates"] >= 1
    assert set(stats["metrics"]) == {"performance_logs", "trust_score_updates", "models_tracked"}


@pytest.mark.parametrize("change,field", [
    ({"trust_score": 1.5}, "trust_score"), ({"trust_score": -0.2}, "trust_score"), ({"accuracy": 1.01}, "accuracy"),
    ({"f1_score": -0.5}, "f1_score"), ({"cycle_id": "cycle-7"}, "cycle_id"), ({"avg_latency_ms": -1}, "avg_latency_ms"),
    ({"trust_score": "high"}, "trust_score"), ({"model_name": None}, "model_name"),
])
def test_legacy_invalid_evaluations_refused(hub, change, field):
    before = hub.legacy_request(MEF, {"action": "get_stats"})["metrics"]["trust_score_updates"]
    reply = hub.legacy_request(MEF, {"action": "log_model_evaluation", "evaluation": {**GOOD, **change}})
    assert reply["status"] == "error" and field in reply["message"] and "validation error" in reply["message"]
    assert hub.legacy_request(MEF, {"action": "get_stats"})["metrics"]["trust_score_updates"] == before


def test_legacy_bad_input(hub):
    assert hub.legacy_request(MEF, {"action": "log_model_evaluation"}) == {"status": "error", "message": "'evaluation'"}
    assert hub.legacy_request(MEF, {"action": "log_performance_metric"}) == {"status": "error", "message": "'metric'"}
    missing = hub.legacy_request(MEF, {"action": "log_performance_metric", "metric": {"agent_name": "a"}})
    assert missing["status"] == "error" and "metric_name" in missing["message"] and "value" in missing["message"]
    assert hub.legacy_request(MEF, {"action": "log_performance_metric", "metric": "x"})["status"] == "error"
    assert hub.legacy_request(MEF, {"action": "get_performance_metrics", "limit": "ten"})["status"] == "error"
    for name in ("ping", "health_check", "fly"):
        assert hub.legacy_request(MEF, {"action": name}) == {"status": "error", "message": f"Unknown action: {name}"}
    assert hub.legacy_request(MEF, [1, 2]) == {"status": "error", "message": "Invalid request format"}
    huge = hub.legacy_request(MEF, {"action": "log_performance_metric", "metric": {
        "agent_name": "a", "metric_name": "m", "value": 1, "context": {"blob": "x" * 100_000}}})
    assert huge["status"] == "error"


def test_legacy_health_port(hub):
    reply = hub.legacy_request(7221, None, raw=b"anything at all")
    assert reply["status"] == "ok" and reply["message"] == "ModelEvaluationFramework is healthy"
    specific = reply["agent_specific_metrics"]
    assert specific["db_connected"] is True and specific["zmq_ready"] is True and specific["eval_count"] >= 1


# ------------------------------------------------------------------------------------ jobs
def test_evaluation_job_through_routes(hub, client):
    sub = zmq.Context.instance().socket(zmq.SUB)
    sub.setsockopt(zmq.LINGER, 0)
    sub.setsockopt(zmq.SUBSCRIBE, b"eval.finished")
    sub.connect(hub.events_endpoint)
    time.sleep(0.3)
    try:
        queued = client.route("POST", "/evaluate/tiny-a", {"texts": ["hello world, the model is a test."],
                                                          "prompts": ["hello", "the world"]})
        assert queued["status"] == "queued" and queued["kind"] == "evaluate"
        assert wait_done(client, queued["eval_id"])["status"] == "finished"
        out = client.route("GET", f"/evaluate/{queued['eval_id']}/results")
        assert sub.poll(30_000)
        topic, payload = sub.recv_multipart()
        event = msgpack.unpackb(payload)
    finally:
        sub.close()
    assert topic == b"eval.finished" and event["eval_id"] == queued["eval_id"] and event["status"] == "finished"
    results = out["results"]
    assert math.isfinite(results["perplexity"]["value"]) and results["perplexity"]["value"] > 1
    assert results["latency"]["tokens_per_s"]["mean"] > 0
    models = {m["id"]: m for m in client.call("GGUFModelManager", "list_models")["models"]}
    assert (out["model_version"], out["model_sha256"]) == (models["tiny-a"]["version"], models["tiny-a"]["sha256"])
    scores = client.call("ModelEvaluationFramework", "get_model_evaluation_scores", {"model_name": "tiny-a"})
    assert scores["evaluations"][0]["cycle_id"] == queued["eval_id"]


def test_ab_job_native(client):
    queued = client.call("ModelEvaluationFramework", "evaluate", {
        "model_id": "tiny-a", "compare_with": "tiny-b",
        "prompts": ["the test", {"prompt": "hello", "reference": " world."}]})
    assert queued["kind"] == "ab"
    assert wait_done(client, queued["eval_id"])["status"] == "finished"
    results = client.call("ModelEvaluationFramework", "eval_results", {"eval_id": queued["eval_id"]})["results"]
    assert len(results["per_prompt"]) == 2 and 0 <= results["summary"]["sign_test"]["p_value"] <= 1
    listed = client.call("ModelEvaluationFramework", "eval_list", {"model_id": "tiny-b"})["evaluations"]
    assert listed[0]["eval_id"] == queued["eval_id"]


def test_native_records_and_bad_input(client):
    logged = client.call("ModelEvaluationFramework", "log_model_evaluation", {**GOOD, "model_name": "native-m"})
    assert uuid.UUID(logged["evaluation_id"])
    with pytest.raises(BadRequest):
        client.call("ModelEvaluationFramework", "log_model_evaluation", {**GOOD, "trust_score": 2.0})
    with pytest.raises(BadRequest, match="cycle_id"):
        client.call("ModelEvaluationFramework", "log_model_evaluation", {**GOOD, "cycle_id": "nope"})
    metric = client.call("ModelEvaluationFramework", "log_performance_metric",
                         {"agent_name": "n", "metric_name": "m", "value": 1.5})
    assert client.call("ModelEvaluationFramework", "get_performance_metrics", {"agent_name": "n"})["metrics"][0][
        "metric_id"] == metric["metric_id"]
    with pytest.raises(NotFound):
        client.route("POST", "/evaluate/no-such-model")
    with pytest.raises(NotFound):
        client.route("GET", "/evaluate/no-such-id/status")
    with pytest.raises(Conflict):
        client.call("ModelEvaluationFramework", "evaluate", {"model_id": "tiny-a", "compare_with": "tiny-a"})
    for args in ({"model_id": "tiny-a", "texts": "not a list"}, {"model_id": "tiny-a", "texts": ["x"] * 65},
                 {"model_id": "tiny-a", "max_tokens": 0}, {"model_id": "tiny-a", "prompts": [{"prompt": "x"}]},
                 {"model_id": "tiny-a", "compare_with": "tiny-b", "prompts": [{"prompt": 1}]}, {}):
        with pytest.raises(BadRequest):
            client.call("ModelEvaluationFramework", "evaluate", args)


# ------------------------------------------------------------------------------------ restart
def test_kill_during_job_then_restart(tmp_path: Path, base: Path):
    data = tmp_path / "data"
    long_texts = ["the world is a test and it is the model. " * 300] * 64
    with HubProcess("model_manager_suite", data, config=hub_config(base / "models")) as process:
        assert process.legacy_request(5617, {"action": "record_usage", "model_id": "m1"})["status"] == "success"
        with process.client() as native:
            native.call("ModelEvaluationFramework", "log_performance_metric",
                        {"agent_name": "keep", "metric_name": "m", "value": 1})
            running = native.call("ModelEvaluationFramework", "evaluate", {"model_id": "tiny-a", "texts": long_texts})
            waiting = native.call("ModelEvaluationFramework", "evaluate",
                                  {"model_id": "tiny-b", "texts": ["a test."], "prompts": ["hi"]})
            deadline = time.monotonic() + 60
            while native.call("ModelEvaluationFramework", "eval_status",
                              {"eval_id": running["eval_id"]})["status"] != "running":
                assert time.monotonic() < deadline
                time.sleep(0.05)
        process.kill9()
    with HubProcess("model_manager_suite", data, config=hub_config(base / "models")) as process:
        with process.client() as native:
            status = native.call("ModelEvaluationFramework", "eval_status", {"eval_id": running["eval_id"]})
            assert status["status"] == "failed" and status["error"] == "interrupted by restart"
            assert wait_done(native, waiting["eval_id"])["status"] == "finished"
            kept = native.call("ModelEvaluationFramework", "get_performance_metrics", {"agent_name": "keep"})
            assert len(kept["metrics"]) == 1
        assert process.legacy_request(5617, {"action": "predict_models"}) == {"status": "success",
                                                                              "predicted_models": ["m1"]}
