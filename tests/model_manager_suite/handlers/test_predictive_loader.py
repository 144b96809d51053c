"""PredictiveLoader in a ModelManagerSuite process with tiny GGUF models: the legacy port 5617 and health
ports 5618/6617 driven exactly as legacy clients (REQ + JSON), the native actions and the preload route,
usage recorded automatically for requests the hub serves, hit accounting, model.preloaded on PUB and the
prometheus counters on /metrics.

Budget: 250 MB with 100 MB overhead per model: two tiny models fit, a third does not.
"""
from __future__ import annotations

import re
import time
import urllib.request
from pathlib import Path

import msgpack
import pytest
import zmq

from bus.errors import BadRequest, Conflict, NotFound
from tests.support.hubproc import HubProcess
from tests.support.tiny_gguf import write_tiny_gguf

PL = 5617


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory):
    base = tmp_path_factory.mktemp("predictive-hub")
    models = base / "models"
    for index, name in enumerate(("tiny-a", "tiny-b", "tiny-c")):
        write_tiny_gguf(models / f"{name}.gguf", seed=index + 1, name=name)
    config = {
        "models": {"dirs": [str(models)], "ram_budget_mb": 250, "overhead_mb": 100.0, "n_ctx": 256,
                   "n_threads": 1, "rescan_interval_s": 0.0, "idle_check_interval_s": 0.0},
        # the background planner is off here so that what is loaded is what the tests do; it is tested
        # in-process (tests/model_manager_suite/test_predictor.py)
        "predictive_loader": {"preload_enabled": False},
    }
    with HubProcess("model_manager_suite", base / "data", config=config) as process:
        yield process


@pytest.fixture(scope="module")
def events(hub):
    sub = zmq.Context.instance().socket(zmq.SUB)
    sub.setsockopt(zmq.LINGER, 0)
    sub.setsockopt(zmq.SUBSCRIBE, b"model.")
    sub.connect(hub.events_endpoint)
    time.sleep(0.3)                       # let the subscription reach the publisher
    yield sub
    sub.close()


def next_event(sub: zmq.Socket, topic: str, timeout_s: float = 30.0) -> dict:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if sub.poll(200):
            got, payload = sub.recv_multipart()
            if got.decode() == topic:
                return msgpack.unpackb(payload)
    raise AssertionError(f"no {topic} event")


# ------------------------------------------------------------------------------------ legacy
def test_legacy_record_and_predict_exact(hub):
    for model in ["whisper", "tts", "llm", "llm", "tts", "llm", "nllb"]:
        assert hub.legacy_request(PL, {"action": "record_usage", "model_id": model}) == {"status": "success"}
    # llm 3, tts 2, whisper 1, nllb 1: the whisper/nllb tie keeps first-recorded order
    assert hub.legacy_request(PL, {"action": "predict_models"}) == {"status": "success",
                                                                    "predicted_models": ["llm", "tts", "whisper"]}


def test_legacy_bad_input(hub):
    for request in ({"action": "record_usage"}, {"action": "record_usage", "model_id": ""},
                    {"action": "record_usage", "model_id": None}):
        assert hub.legacy_request(PL, request) == {"status": "error", "message": "No model_id provided"}
    assert hub.legacy_request(PL, {"action": "record_usage", "model_id": ["x"]}) == {
        "status": "error", "message": "unhashable type: 'list'"}
    assert hub.legacy_request(PL, {"action": "record_usage", "model_id": "x" * 500})["status"] == "error"
    for name in ("ping", "health", "fly"):
        assert hub.legacy_request(PL, {"action": name}) == {"status": "error", "message": f"Unknown action: {name}"}
    assert hub.legacy_request(PL, {}) == {"status": "error", "message": "Unknown action: None"}
    assert hub.legacy_request(PL, ["not", "an", "object"])["status"] == "error"
    assert hub.legacy_request(PL, None, raw=b"\xff not json")["status"] == "error"


def test_legacy_health_main_and_health_ports(hub):
    replies = [hub.legacy_request(PL, {"action": "health_check"})]
    replies += [hub.legacy_request(port, None, raw=b"anything") for port in (5618, 6617)]
    for reply in replies:
        assert set(reply) == {"status", "agent", "uptime", "timestamp"}
        assert reply["status"] == "HEALTHY" and reply["agent"] == "PredictiveLoader" and reply["uptime"] >= 0
        assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", reply["timestamp"])


# ------------------------------------------------------------------------------------ native
def test_served_requests_are_recorded_and_preload_hit_counted(hub, client, events):
    before = client.call("PredictiveLoader", "stats")
    client.route("POST", "/predict/tiny-a", {"prompt": "hello", "max_tokens": 2})      # not loaded: a miss
    out = client.route("POST", "/models/tiny-b/preload")
    assert out["preloaded"] is True and out["model_id"] == "tiny-b" and out["reason"] == "request"
    event = next_event(events, "model.preloaded")
    assert event["model_id"] == "tiny-b" and event["source"] == "ModelManagerSuite"
    client.call("GGUFModelManager", "predict", {"model_id": "tiny-b", "prompt": "hi", "max_tokens": 2})  # a hit
    stats = client.call("PredictiveLoader", "stats")
    assert stats["requests"] - before["requests"] == 2
    assert (stats["misses"] - before["misses"], stats["hits"] - before["hits"]) == (1, 1)
    assert stats["preload_hit_rate"] == 1.0 and stats["pending"] == []
    with urllib.request.urlopen(f"{hub.http_url}/metrics", timeout=10) as response:
        text = response.read().decode()
    assert re.search(r"^mms_preload_hits_total 1\.0$", text, re.M)
    assert re.search(r"^mms_preloads_total\{reason=\"request\"\} 1\.0$", text, re.M)
    predicted = client.call("PredictiveLoader", "predict", {"n": 2})
    assert len(predicted["predictions"]) == 2 and predicted["legacy"][:1] == ["llm"]
    assert {"transition", "time", "frequency", "recency"} == set(predicted["predictions"][0]["components"])


def test_preload_within_budget_and_refusals(client):
    client.call("GGUFModelManager", "load_model", {"model_id": "tiny-a", "pin": True})
    client.call("GGUFModelManager", "load_model", {"model_id": "tiny-b", "pin": True})
    try:
        with pytest.raises(Conflict):
            client.call("PredictiveLoader", "preload", {"model_id": "tiny-c"})       # both pinned: no room
        assert client.call("PredictiveLoader", "preload", {"model_id": "tiny-a"})["already_loaded"] is True
        client.call("GGUFModelManager", "load_model", {"model_id": "tiny-b", "pin": False})
        with pytest.raises(Conflict):
            client.call("PredictiveLoader", "preload", {"model_id": "tiny-c", "evict": False})
        out = client.call("PredictiveLoader", "preload", {"model_id": "tiny-c"})
        assert out["unloaded"] == ["tiny-b"]
        budget = client.call("GGUFModelManager", "gpu_status")["budget"]
        assert sum(m["reserved_mb"] for m in budget["loaded"]) <= 250
    finally:
        client.call("GGUFModelManager", "load_model", {"model_id": "tiny-a", "pin": False})


def test_native_bad_input(client):
    with pytest.raises(NotFound):
        client.call("PredictiveLoader", "preload", {"model_id": "no-such-model"})
    with pytest.raises(BadRequest):
        client.call("PredictiveLoader", "preload", {})
    with pytest.raises(BadRequest):
        client.call("PredictiveLoader", "predict", {"n": 0})
    with pytest.raises(BadRequest):
        client.call("PredictiveLoader", "record_usage", {"model_id": "x" * 1000})
    with pytest.raises(BadRequest):
        client.call("PredictiveLoader", "record_usage", {"model_id": 5})
    assert client.call("PredictiveLoader", "record_usage", {"model_id": "tiny-c"})["model_id"] == "tiny-c"


def test_json_client_and_route_forms(hub):
    with hub.client(encoding="json") as json_client:
        stats = json_client.call("PredictiveLoader", "stats")
        assert stats["usage_rows"] >= 7 and stats["request_coordinator"]["endpoint"] is None
        assert json_client.call("hub", "ping") is not None


# ------------------------------------------------------------------------ background planner
def test_hub_preloads_the_predicted_next_model(tmp_path: Path):
    models = tmp_path / "models"
    for index, name in enumerate(("tiny-a", "tiny-b", "tiny-c")):
        write_tiny_gguf(models / f"{name}.gguf", seed=index + 1, name=name)
    config = {"models": {"dirs": [str(models)], "ram_budget_mb": 250, "overhead_mb": 100.0, "n_ctx": 256,
                         "n_threads": 1, "rescan_interval_s": 0.0, "idle_check_interval_s": 0.0},
              "predictive_loader": {"settle_s": 0.05, "preload_top_n": 1, "min_score": 0.0}}
    with HubProcess("model_manager_suite", tmp_path / "data", config=config) as process, process.client() as native:
        def use(model: str) -> None:
            native.call("GGUFModelManager", "predict", {"model_id": model, "prompt": "hi", "max_tokens": 1})

        for model in ["tiny-a", "tiny-b", "tiny-c"] * 3:       # a pipeline that does not fit the budget
            use(model)
        use("tiny-a")
        deadline = time.monotonic() + 60
        while native.call("PredictiveLoader", "stats")["pending"] != ["tiny-b"]:
            assert time.monotonic() < deadline, native.call("PredictiveLoader", "stats")
            time.sleep(0.05)
        before = native.call("PredictiveLoader", "stats")["hits"]
        use("tiny-b")
        stats = native.call("PredictiveLoader", "stats")
        assert stats["hits"] == before + 1, stats
        budget = native.call("GGUFModelManager", "gpu_status")["budget"]
        assert sum(m["reserved_mb"] for m in budget["loaded"]) <= 250
