"""ModelManagerSuite as a separate process with tiny GGUF models written at test time: GGUFModelManager and
ModelManagerAgent through their legacy ports (REQ + JSON, exactly as legacy clients), the native port
(msgpack and JSON, action and route forms, streaming) and HTTP.

Budget: 150 MB of RAM with 64 MB overhead per model, so two tiny models fit (a swap needs both for a moment)
and a third evicts the least recently used. ``wide`` is a configured model whose n_ctx makes its KV cache
larger than the whole budget; ``broken`` is a corrupt GGUF.
"""
from __future__ import annotations

import json
import time
import urllib.request
from pathlib import Path

import msgpack
import pytest
import zmq

from bus.errors import BadRequest, Conflict, NotFound
from tests.support.hubproc import HubProcess
from tests.support.tiny_gguf import write_corrupt_gguf, write_tiny_gguf

GGUF, MMA = 5575, 5570
STT = {"whisper-small": {"vram_estimate_mb": 10, "model_path": "models/whisper-small"}}


def write_models(directory: Path) -> Path:
    for index, name in enumerate(("tiny-a", "tiny-b", "tiny-c")):
        write_tiny_gguf(directory / f"{name}.gguf", seed=index + 1, name=name)
    write_tiny_gguf(directory / "wide.gguf", seed=7, context_length=1 << 20, name="wide")
    write_corrupt_gguf(directory / "broken.gguf", seed=8)
    return directory


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory):
    base = tmp_path_factory.mktemp("models-hub")
    models = write_models(base / "models")
    config = {
        "models": {"dirs": [str(models)], "ram_budget_mb": 150, "overhead_mb": 64.0, "n_ctx": 256,
                   "n_threads": 1, "rescan_interval_s": 0.0, "load_policy": {"fast": "tiny-a", "quality": "tiny-b"},
                   "model_configs": [{"model_id": "wide-ctx", "model_path": "wide.gguf", "n_ctx": 1 << 19,
                                      "serving_method": "gguf_direct", "display_name": "Wide context"}]},
        "model_manager_agent": {"stt_models": STT},
        "predictive_loader": {"preload_enabled": False},   # no background loads between assertions
    }
    with HubProcess("model_manager_suite", base / "data", config=config) as process:
        yield process


@pytest.fixture(autouse=True)
def nothing_loaded(client):
    """Each test starts with no model loaded and no pins."""
    yield
    for info in client.call("GGUFModelManager", "gpu_status")["budget"]["loaded"]:
        if info["pinned"]:
            client.call("GGUFModelManager", "load_model", {"model_id": info["model_id"], "pin": False})
        client.call("GGUFModelManager", "unload_model", {"model_id": info["model_id"]})


def loaded_ids(client) -> list[str]:
    return [info["model_id"] for info in client.call("GGUFModelManager", "gpu_status")["budget"]["loaded"]]


# -- GGUFModelManager legacy port -----------------------------------------------------------------

def test_gguf_legacy_list_load_generate_unload(hub):
    listed = hub.legacy_request(GGUF, {"action": "list_models"})
    assert listed["status"] == "success"
    models = {m["model_id"]: m for m in listed["models"]}
    assert set(models) == {"tiny-a", "tiny-b", "tiny-c", "wide-ctx", "broken"}   # wide.gguf is wide-ctx
    assert models["wide-ctx"]["display_name"] == "Wide context" and models["wide-ctx"]["n_ctx"] == 1 << 19
    assert models["wide-ctx"]["capabilities"] == ["code-generation"]
    assert hub.legacy_request(GGUF, {"action": "load_model", "model_id": "tiny-a"}) == {"status": "success",
                                                                                     "loaded": True}
    reply = hub.legacy_request(GGUF, {"action": "generate_text", "model_id": "tiny-a", "prompt": "hello world",
                                      "system_prompt": "Be brief.", "max_tokens": 8, "conversation_id": "g1"})
    assert reply["status"] == "success" and reply["model_id"] == "tiny-a" and reply["using_kv_cache"] is False
    again = hub.legacy_request(GGUF, {"action": "generate_text", "model_id": "tiny-a", "prompt": "more",
                                      "max_tokens": 4, "conversation_id": "g1"})
    assert again["using_kv_cache"] is True
    health = hub.legacy_request(GGUF, {"action": "health_check"})
    assert health["status"] == "healthy" and health["models_loaded"] == 1 and health["total_models"] == 5
    assert health["vram_usage"]["total_mb"] == 150.0 and health["kv_caches_count"] >= 1
    assert hub.legacy_request(GGUF, {"action": "unload_model", "model_id": "tiny-a"}) == {"status": "success",
                                                                                       "unloaded": True}


def test_gguf_legacy_bad_input(hub):
    assert hub.legacy_request(GGUF, {"action": "load_model"}) == {"status": "error", "error": "model_id required"}
    assert hub.legacy_request(GGUF, {"action": "generate_text", "prompt": "x"}) == {
        "status": "error", "error": "model_id and prompt required"}
    for model_id, words in (("nope", "nope"), ("broken", "not loadable"), ("wide-ctx", "budget")):
        reply = hub.legacy_request(GGUF, {"action": "load_model", "model_id": model_id})
        assert reply["status"] == "error" and reply["loaded"] is False and words in reply["error"]
    long = hub.legacy_request(GGUF, {"action": "generate_text", "model_id": "tiny-b", "prompt": "hello world " * 400})
    assert long["status"] == "error" and "context" in long["error"]
    assert hub.legacy_request(GGUF, {"action": "fly"}) == {"status": "error", "error": "Unknown action: fly"}
    assert hub.legacy_request(GGUF, None, raw=b"\xff not json")["status"] == "error"


def test_gguf_legacy_health_ports(hub):
    for port in (5576, 6575):
        reply = hub.legacy_request(port, None, raw=b"anything")
        assert reply["status"] == "ok" and reply["message"] == "GgufModelManager is healthy"


# -- ModelManagerAgent legacy port ----------------------------------------------------------------

def test_model_manager_legacy_generate_status_and_conversation(hub):
    reply = hub.legacy_request(MMA, {"action": "generate", "model_pref": "quality", "prompt": "hello",
                                     "params": {"max_tokens": 4, "temperature": 0.2, "top_p": 0.9},
                                     "conversation_id": "m1"})
    assert reply["status"] == "ok" and reply["model_used"] == "tiny-b" and reply["conversation_id"] == "m1"
    assert not reply["response_text"].startswith("[MMA-") and reply["using_kv_cache"] is False
    status = hub.legacy_request(MMA, {"action": "status"})
    assert status["status"] == "ok" and status["health"] == "ok" and "tiny-b" in status["loaded_models"]
    assert status["routing_policy"] == {"fast": "tiny-a", "quality": "tiny-b"}
    assert hub.legacy_request(MMA, {"action": "clear_conversation", "conversation_id": "m1"})["cleared"] is True
    assert hub.legacy_request(MMA, {"action": "generate", "model_pref": "fast"}) == {
        "status": "error", "message": "Missing 'prompt' field"}
    failed = hub.legacy_request(MMA, {"action": "generate", "model_pref": "wide-ctx", "prompt": "x"})
    assert failed["status"] == "error" and "budget" in failed["message"]


def test_model_manager_legacy_commands_and_process(hub):
    loaded = hub.legacy_request(MMA, {"command": "LOAD_MODEL", "model_name": "tiny-c", "device": "MainPC",
                                      "quantization_level": "FP16"})
    assert loaded["status"] == "SUCCESS" and loaded["message"] == "Model tiny-c loaded successfully"
    status = hub.legacy_request(MMA, {"command": "GET_LOADED_MODELS_STATUS"})
    assert status["status"] == "SUCCESS" and "tiny-c" in status["loaded_models"]
    assert hub.legacy_request(MMA, {"command": "HEALTH_CHECK"})["models"]["tiny-c"] == "online"
    selected = hub.legacy_request(MMA, {"command": "SELECT_MODEL", "task_type": "text-generation"})
    assert selected["status"] == "SUCCESS" and selected["model_id"] == "tiny-c"
    every = hub.legacy_request(MMA, {"command": "PROCESS", "type": "get_all_models"})
    assert every["status"] == "success" and every["models"]["tiny-c"]["is_loaded"] is True
    assert hub.legacy_request(MMA, {"command": "PROCESS", "type": "get_memory_status"})["device"] == "cpu"
    assert hub.legacy_request(MMA, {"command": "VERIFY_SERVICES"})["status"] == "SUCCESS"
    assert hub.legacy_request(MMA, {"command": "UNLOAD_MODEL", "model_name": "tiny-c"})["status"] == "SUCCESS"
    assert hub.legacy_request(MMA, {"command": "NOPE"}) == {"status": "ERROR", "message": "Unknown command: NOPE"}


def test_vram_optimizer_finds_its_machines_models_to_unload(hub):
    """VramOptimizerAgent keeps the models whose loaded_models[id]["device"] is its machine name ("MainPC")."""
    assert hub.legacy_request(MMA, {"command": "LOAD_MODEL", "model_name": "tiny-a", "device": "MainPC"})[
        "status"] == "SUCCESS"
    status = hub.legacy_request(MMA, {"command": "GET_LOADED_MODELS_STATUS"})
    mine = [mid for mid, info in status["loaded_models"].items() if info.get("device") == "MainPC"]
    assert mine == ["tiny-a"] and status["loaded_models"]["tiny-a"]["compute_device"] == "cpu"
    for model_id in mine:                  # what it does under VRAM pressure
        assert hub.legacy_request(MMA, {"command": "UNLOAD_MODEL", "model_name": model_id})["status"] == "SUCCESS"
    assert hub.legacy_request(MMA, {"command": "GET_LOADED_MODELS_STATUS"})["loaded_models"] == {}


def test_model_manager_legacy_stt_requests_and_loop_errors(hub):
    ready = hub.legacy_request(MMA, {"model_id": "whisper-small", "request_id": "s1",
                                     "context": {"quantization_level": "int8"}})
    assert ready["status"] == "MODEL_READY" and ready["access_info"]["quantization_level"] == "int8"
    assert ready["access_info"]["model_path_from_config"] == "models/whisper-small"
    missing = hub.legacy_request(MMA, {"request_id": "s2"})
    assert missing["status"] == "ERROR_LOADING_MODEL" and missing["error_code"] == "MISSING_MODEL_ID"
    assert hub.legacy_request(MMA, {"model_id": "ghost", "request_id": "s3"})["error_code"] == "UNKNOWN_VRAM"
    assert hub.legacy_request(MMA, {"model_id": "wide-ctx", "request_id": "s4"})["error_code"] == "INSUFFICIENT_VRAM"
    gguf = hub.legacy_request(MMA, {"model_id": "tiny-a", "request_id": "s5"})
    assert gguf["status"] == "MODEL_READY" and gguf["access_info"]["vram_allocated_mb"] > 64
    broken = hub.legacy_request(MMA, ["not", "an", "object"])
    assert broken["status"] == "ERROR" and broken["error_message"] and broken["timestamp"]
    hub.legacy_request(MMA, {"command": "UNLOAD_MODEL", "model_name": "whisper-small"})


def test_model_manager_legacy_health(hub):
    for port in (5571, 6570):
        reply = hub.legacy_request(port, None, raw=b"ping")
        assert reply["status"] == "ok" and reply["details"]["uptime_seconds"] > 0
    assert hub.legacy_request(MMA, {"action": "health_check"})["details"]["status_message"] == "Agent is operational."


# -- native port ----------------------------------------------------------------------------------

def test_native_load_predict_stream_unload(client):
    info = client.call("GGUFModelManager", "load_model", {"model_id": "fast", "pin": True, "priority": 2})
    assert info["model_id"] == "tiny-a" and info["pinned"] is True
    result = client.call("GGUFModelManager", "predict", {"model_id": "tiny-a", "prompt": "hello", "max_tokens": 6})
    assert result["model_id"] == "tiny-a" and result["completion_tokens"] >= 1
    items = list(client.stream("GGUFModelManager", "predict", {"model_id": "tiny-a", "prompt": "hello",
                                                                "max_tokens": 8, "stream": True}))
    chunks, final = items[:-1], items[-1]
    assert chunks and "".join(chunks) == final["text"]
    chat = client.call("GGUFModelManager", "predict", {"model_id": "tiny-a", "max_tokens": 3,
                                                        "messages": [{"role": "user", "content": "hi"}]})
    assert chat["message"]["role"] == "assistant"
    stats = client.call("GGUFModelManager", "model_stats", {"model_id": "tiny-a"})
    assert stats["requests"] >= 3 and stats["loaded"] is True
    model = client.call("GGUFModelManager", "get_model", {"model_id": "tiny-a"})
    assert model["loaded"] is True and model["aliases"] == ["fast"] and model["pinned"] is True
    client.call("GGUFModelManager", "load_model", {"model_id": "tiny-a", "pin": False})
    assert client.call("GGUFModelManager", "unload_model", {"model_id": "tiny-a"}) == {"model_id": "tiny-a",
                                                                                     "unloaded": True}


def test_native_swap_and_evict_publish_events(hub, client):
    sub = zmq.Context.instance().socket(zmq.SUB)
    sub.setsockopt(zmq.SUBSCRIBE, b"model.")
    sub.setsockopt(zmq.RCVTIMEO, 10000)
    sub.connect(hub.events_endpoint)
    time.sleep(0.5)                                              # slow joiner
    try:
        client.call("GGUFModelManager", "load_model", {"model_id": "tiny-a"})
        swapped = client.call("GGUFModelManager", "swap", {"model_id": "fast", "to": "tiny-c"})
        assert swapped["model_id"] == "tiny-c" and swapped["previous"] == "tiny-a" and "fast" in swapped["aliases"]
        assert loaded_ids(client) == ["tiny-c"]
        routed = hub.legacy_request(MMA, {"action": "generate", "model_pref": "fast", "prompt": "x",
                                          "params": {"max_tokens": 2}})
        assert routed["model_used"] == "tiny-c"                 # the alias follows the swap
        client.call("GGUFModelManager", "load_model", {"model_id": "tiny-b"})
        client.call("GGUFModelManager", "load_model", {"model_id": "tiny-a"})   # third one: LRU tiny-c evicted
        assert loaded_ids(client) == ["tiny-a", "tiny-b"]
        topics = []
        while "model.evicted" not in topics:
            topic, payload = sub.recv_multipart()
            topics.append(topic.decode())
            fields = msgpack.unpackb(payload)
            assert fields["source"] == "ModelManagerSuite" and fields["model_id"]
        assert {"model.loaded", "model.unloaded"} <= set(topics)
    finally:
        sub.close(linger=0)
        client.call("GGUFModelManager", "swap", {"model_id": "fast", "to": "tiny-a"})


def test_native_errors(client):
    with pytest.raises(NotFound):
        client.call("GGUFModelManager", "load_model", {"model_id": "ghost"})
    with pytest.raises(Conflict, match="not loadable"):
        client.call("GGUFModelManager", "load_model", {"model_id": "broken"})
    with pytest.raises(Conflict, match="budget"):
        client.call("GGUFModelManager", "load_model", {"model_id": "wide-ctx"})
    with pytest.raises(BadRequest, match="context"):
        client.call("GGUFModelManager", "predict", {"model_id": "tiny-b", "prompt": "hello world " * 400})
    with pytest.raises(BadRequest, match="model_id"):
        client.call("GGUFModelManager", "predict", {"prompt": "x"})
    with pytest.raises(BadRequest, match="temperature"):
        client.call("GGUFModelManager", "predict", {"model_id": "tiny-b", "prompt": "x", "temperature": "hot"})
    with pytest.raises(BadRequest, match="prompt"):
        client.call("ModelManagerAgent", "generate", {"model_pref": "fast"})


def test_native_mma_actions(client):
    result = client.call("ModelManagerAgent", "generate", {"prompt": "hello", "model_pref": "quality",
                                                           "max_tokens": 3})
    assert result["model_used"] == "tiny-b" and isinstance(result["response_text"], str)
    status = client.call("ModelManagerAgent", "status")
    assert "tiny-b" in status["loaded_models"] and status["routing_policy"]["quality"] == "tiny-b"
    assert client.call("ModelManagerAgent", "select_model", {"task_type": "text-generation"})["model_id"] == "tiny-b"


def test_route_form_and_json_encoding(hub):
    with hub.client(encoding="json") as native:
        listed = native.route("GET", "/models", {"include_invalid": False})
        assert {m["id"] for m in listed["models"]} == {"tiny-a", "tiny-b", "tiny-c", "wide-ctx"}
        assert native.route("GET", "/models/tiny-b")["id"] == "tiny-b"
        assert native.route("POST", "/models/tiny-b/load", {"pin": True})["pinned"] is True
        result = native.route("POST", "/predict/tiny-b", {"prompt": "hi", "max_tokens": 2})
        assert result["model_id"] == "tiny-b"
        assert native.route("GET", "/models/tiny-b/stats")["requests"] >= 1
        assert native.route("GET", "/gpu/status")["budget"]["devices"]["cpu"]["capacity_mb"] == 150.0
        native.route("POST", "/models/tiny-b/load", {"pin": False})
        assert native.route("POST", "/models/tiny-b/unload") == {"model_id": "tiny-b", "unloaded": True}
        with pytest.raises(NotFound):
            native.route("GET", "/models/ghost")


def test_http_routes(hub):
    headers = {"Authorization": f"Bearer {hub.token()}"}
    request = urllib.request.Request(f"{hub.http_url}/models?rescan=true&include_invalid=false", headers=headers)
    with urllib.request.urlopen(request, timeout=30) as response:
        body = json.loads(response.read())
    assert len(body["models"]) == 4
    request = urllib.request.Request(f"{hub.http_url}/predict/tiny-a", method="POST", headers={
        **headers, "Content-Type": "application/json"}, data=json.dumps({"prompt": "hi", "max_tokens": 2}).encode())
    with urllib.request.urlopen(request, timeout=30) as response:
        assert json.loads(response.read())["model_id"] == "tiny-a"


def test_models_dir_from_the_environment(tmp_path):
    models = tmp_path / "env-models"
    write_tiny_gguf(models / "env-model.gguf", seed=11)
    with HubProcess("model_manager_suite", tmp_path / "data", env={"MODELS_DIR": str(models)},
                    config={"models": {"n_ctx": 128, "n_threads": 1}}) as process:
        listed = process.legacy_request(GGUF, {"action": "list_models"})
        assert [m["model_id"] for m in listed["models"]] == ["env-model"]
        reply = process.legacy_request(GGUF, {"action": "generate_text", "model_id": "env-model", "prompt": "hi",
                                              "max_tokens": 2})
        assert reply["status"] == "success"


def test_metrics_show_loaded_models_and_the_budget(hub, client):
    client.call("GGUFModelManager", "load_model", {"model_id": "tiny-a"})
    with urllib.request.urlopen(hub.http_url + "/metrics", timeout=10) as resp:
        text = resp.read().decode()
    assert 'mms_model_loaded{device="cpu",model_id="tiny-a"} 1.0' in text
    assert 'mms_memory_budget_bytes{device="cpu"} 1.572864e+08' in text   # 150 MB
    used = [line for line in text.splitlines() if line.startswith('mms_memory_used_bytes{device="cpu"}')]
    assert used and float(used[0].split()[-1]) > 0
