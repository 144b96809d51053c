"""ModelManagerAgent in process, over the real core and tiny GGUF models written at test time.

Every legacy request family (generate / clear_conversation / status, the `command` family with PROCESS
types, the STT model request, loop errors, health) with its legacy reply, the native actions, and bad input.
"""
from __future__ import annotations

import pytest

from agents.model_manager_suite.handlers.model_manager_agent import ModelManagerAgent
from bus.errors import BadRequest, NotFound
from tests.model_manager_suite.handlers.conftest import call

STT = {"stt_models": {"whisper-small": {"vram_estimate_mb": 20, "model_path": "models/whisper-small"},
                      "whisper-huge": {"vram_estimate_mb": 5000, "model_path": "models/whisper-huge"},
                      "whisper-nopath": {"vram_estimate_mb": 5},
                      "whisper-novram": {"model_path": "x"}},
       "model_priorities": {"whisper-small": 2}}


@pytest.fixture
def hub(make_hub):
    return make_hub(mma=STT)


@pytest.fixture
def mma(hub) -> ModelManagerAgent:
    return hub.mma


def legacy(handler: ModelManagerAgent, request) -> dict:
    return handler.handle_legacy(request, 5570)


# -- {"action": ...} -----------------------------------------------------------------------------

def test_generate_routes_the_preference_through_the_load_policy(mma, hub):
    reply = legacy(mma, {"action": "generate", "model_pref": "quality", "prompt": "hello",
                         "params": {"max_tokens": 4, "temperature": 0.0, "top_p": 0.9}})
    assert reply["status"] == "ok" and reply["model_used"] == "tiny-b"
    greedy = call(hub.gguf, "predict", {"model_id": "tiny-b", "prompt": "hello", "max_tokens": 4,
                                                          "temperature": 0.0, "top_p": 0.9})
    assert reply["response_text"] == greedy["text"]                     # the model's own text
    assert isinstance(reply["timestamp"], float) and "conversation_id" not in reply
    assert legacy(mma, {"action": "generate", "prompt": "hi", "params": {"max_tokens": 2}})["model_used"] == "tiny-a"
    unknown_pref = legacy(mma, {"action": "generate", "model_pref": "creative", "prompt": "hi",
                                "params": {"max_tokens": 2}})
    assert unknown_pref["model_used"] == "tiny-a"                      # legacy fallback to "fast"
    by_id = legacy(mma, {"action": "generate", "model_pref": "tiny-b", "prompt": "hi", "params": {"max_tokens": 2}})
    assert by_id["model_used"] == "tiny-b"


def test_generate_conversation_and_clear(mma):
    first = legacy(mma, {"action": "generate", "prompt": "hello", "params": {"max_tokens": 3}, "conversation_id": "k"})
    second = legacy(mma, {"action": "generate", "prompt": "more", "params": {"max_tokens": 3}, "conversation_id": "k"})
    assert first["conversation_id"] == "k" and first["using_kv_cache"] is False
    assert second["using_kv_cache"] is True
    cleared = legacy(mma, {"action": "clear_conversation", "conversation_id": "k"})
    assert cleared["status"] == "ok" and cleared["cleared"] is True
    assert legacy(mma, {"action": "clear_conversation", "conversation_id": "k"})["cleared"] is False
    assert legacy(mma, {"action": "clear_conversation"}) == {"status": "error",
                                                            "message": "Missing 'conversation_id' field"}


def test_generate_failures_are_error_replies_never_made_up_text(make_hub):
    mma = make_hub(load_policy={"fast": "big", "broken": "broken"}).mma
    assert legacy(mma, {"action": "generate", "prompt": ""}) == {"status": "error", "message": "Missing 'prompt' field"}
    assert legacy(mma, {"action": "generate"}) == {"status": "error", "message": "Missing 'prompt' field"}
    too_big = legacy(mma, {"action": "generate", "prompt": "x"})            # fast -> big, over the budget
    assert too_big["status"] == "error" and "budget" in too_big["message"] and set(too_big) == {"status", "message"}
    corrupt = legacy(mma, {"action": "generate", "model_pref": "broken", "prompt": "x"})
    assert corrupt["status"] == "error" and "not loadable" in corrupt["message"]
    long = legacy(mma, {"action": "generate", "model_pref": "tiny-a", "prompt": "hello world " * 400})
    assert long["status"] == "error" and "context" in long["message"]
    bad = legacy(mma, {"action": "generate", "model_pref": "tiny-a", "prompt": "x", "params": {"max_tokens": "x"}})
    assert bad["status"] == "error" and "max_tokens" in bad["message"]
    assert legacy(mma, {"action": "generate", "prompt": "x", "params": [1]})["status"] == "error"


def test_generate_with_no_policy_match_names_the_preference(make_hub):
    mma = make_hub(load_policy={}).mma
    reply = legacy(mma, {"action": "generate", "model_pref": "quality", "prompt": "x"})
    assert reply == {"status": "error", "message": "No model found for preference: quality"}


def test_generate_batch_mode(mma):
    reply = legacy(mma, {"action": "generate", "prompt": "x", "params": {
        "max_tokens": 2, "batch_mode": True, "batch_data": ["one", {"prompt": "two"}]}})
    assert reply["status"] == "ok" and len(reply["responses"]) == 2 and reply["model_used"] == "tiny-a"


def test_status_action(mma):
    legacy(mma, {"action": "generate", "prompt": "x", "params": {"max_tokens": 1}})
    reply = legacy(mma, {"action": "status"})
    assert reply["status"] == "ok" and reply["health"] == "ok"
    assert set(reply["loaded_models"]) == {"tiny-a"} and reply["total_models"] == 1
    assert reply["loaded_models"]["tiny-a"]["device"] == "MainPC"             # the machine label, as legacy
    assert reply["loaded_models"]["tiny-a"]["compute_device"] == "cpu"
    assert reply["total_vram_used_mb"] > 64 and reply["total_vram_mb"] == 100.0
    assert reply["routing_policy"] == {"fast": "tiny-a", "quality": "tiny-b"}


def test_unknown_action_and_health_actions(mma):
    assert legacy(mma, {"action": "dance"}) == {"status": "error", "message": "Unknown action: dance"}
    health = legacy(mma, {"action": "health_check"})
    assert health["status"] == "ok" and health["details"]["status_message"] == "Agent is operational."
    assert mma.legacy_health(5571)["details"]["uptime_seconds"] >= 0


def test_loop_errors(mma):
    for request in ([1, 2], "text", 7):
        reply = legacy(mma, request)
        assert reply["status"] == "ERROR" and reply["error_message"] and "T" in reply["timestamp"]


# -- {"command": ...} ----------------------------------------------------------------------------

def test_load_unload_and_loaded_status_commands(mma):
    assert legacy(mma, {"command": "LOAD_MODEL"}) == {"status": "ERROR", "message": "Missing model_name parameter"}
    assert legacy(mma, {"command": "LOAD_MODEL", "model_name": "nope"}) == {
        "status": "ERROR", "message": "Model nope not found in registry"}
    loaded = legacy(mma, {"command": "LOAD_MODEL", "model_name": "tiny-a", "device": "MainPC",
                          "quantization_level": "Q4"})
    assert loaded["status"] == "SUCCESS" and loaded["message"] == "Model tiny-a loaded successfully"
    assert loaded["quantization_level"] == "Q4"
    assert legacy(mma, {"command": "LOAD_MODEL", "model_name": "tiny-a"})["message"] == "Model tiny-a already loaded"
    status = legacy(mma, {"command": "GET_LOADED_MODELS_STATUS"})
    assert status["status"] == "SUCCESS" and status["total_models"] == 1
    assert set(status["loaded_models"]["tiny-a"]) >= {"vram_usage_mb", "device", "last_used", "is_active",
                                                     "quantization"}
    big = legacy(mma, {"command": "LOAD_MODEL", "model_name": "big"})
    assert big["status"] == "ERROR" and "budget" in big["message"]
    broken = legacy(mma, {"command": "LOAD_MODEL", "model_name": "broken"})
    assert broken["status"] == "ERROR" and "not loadable" in broken["message"]
    assert legacy(mma, {"command": "UNLOAD_MODEL", "model_name": "tiny-a"}) == {
        "status": "SUCCESS", "message": "Model tiny-a unloaded successfully"}
    assert legacy(mma, {"command": "UNLOAD_MODEL", "model_name": "tiny-a"}) == {
        "status": "SUCCESS", "message": "Model tiny-a not loaded"}
    assert legacy(mma, {"command": "UNLOAD_MODEL"})["status"] == "ERROR"


def test_health_select_verify_and_unknown_commands(mma):
    health = legacy(mma, {"command": "HEALTH_CHECK"})
    assert health["status"] == "SUCCESS" and health["models"]["tiny-a"] == "available_not_loaded"
    assert "broken" not in health["models"] or health["models"]["broken"]
    selected = legacy(mma, {"command": "SELECT_MODEL", "task_type": "text-generation", "context_size": 100})
    assert selected["status"] == "SUCCESS" and selected["model_id"] in ("tiny-a", "tiny-b")
    assert selected["model_info"]["context_length"] >= 100
    legacy(mma, {"command": "LOAD_MODEL", "model_name": "tiny-b"})
    assert legacy(mma, {"command": "SELECT_MODEL", "task_type": "anything"})["model_id"] == "tiny-b"  # loaded first
    huge_ctx = legacy(mma, {"command": "SELECT_MODEL", "task_type": "text-generation", "context_size": 10**6})
    assert huge_ctx["status"] == "SUCCESS"                                  # largest context as fallback
    assert legacy(mma, {"command": "SELECT_MODEL", "context_size": "big"})["status"] == "ERROR"
    verify = legacy(mma, {"command": "VERIFY_SERVICES"})
    assert verify["status"] == "SUCCESS" and verify["services"] == {}
    assert legacy(mma, {"command": "DANCE"}) == {"status": "ERROR", "message": "Unknown command: DANCE"}


def test_process_types(mma):
    def process(kind: str, **fields) -> dict:
        return legacy(mma, {"command": "PROCESS", "type": kind, **fields})

    assert process("load_model") == {"status": "error", "error": "Missing model_name parameter"}
    assert process("load_model", model_name="tiny-a")["status"] == "success"
    failed = process("load_model", model_name="big")
    assert failed["status"] == "error" and failed["model_status"] == "error"
    one = process("get_model_status", model_name="tiny-a")
    assert one["status"] == "success" and one["is_loaded"] is True and one["current_memory_usage_mb"] > 0
    assert one["model_info"]["serving_method"] == "gguf_direct" and one["model_info"]["status"] == "online"
    assert process("get_model_status", model_name="fast")["model_name"] == "fast"
    assert process("get_model_status", model_name="nope") == {"status": "error", "error": "Unknown model: nope"}
    models = process("get_all_models")["models"]
    assert set(models) == {"tiny-a", "tiny-b", "big", "broken"} and models["tiny-a"]["is_loaded"] is True
    memory = process("get_memory_status")
    assert memory["status"] == "success" and memory["device"] == "cpu" and memory["vram_budget_mb"] == 100.0
    assert set(memory["loaded_model_instances"]) == {"tiny-a"}
    health = process("health_check", request_id="r1")
    assert health["status"] == "ok" and health["request_id_received"] == "r1" and "vram_usage" in health["details"]
    assert process("unload_model", model_name="tiny-a")["model_status"] == "available_not_loaded"
    assert process("unload_model", model_name="tiny-a")["model_status"] == "unloaded"
    miss = process("get_cached_response", model="tiny-a", prompt="p", request_id="r2")
    assert miss == {"status": "success", "cached": False, "request_id": "r2"}
    assert process("cache_response", model="tiny-a", prompt="p", response="answer")["message"] == "Response cached"
    hit = process("get_cached_response", model="tiny-a", prompt="p")
    assert hit == {"status": "success", "cached": True, "response": "answer", "request_id": "N/A"}
    assert process("juggle") == {"status": "error", "message": "Unknown request type: juggle", "request_id": "N/A"}


# -- STT-style model requests --------------------------------------------------------------------

def test_stt_model_ready_for_configured_and_gguf_models(mma):
    ready = legacy(mma, {"model_id": "whisper-small", "request_id": "q1", "context": {"quantization_level": "int8"}})
    assert ready["status"] == "MODEL_READY" and ready["request_id"] == "q1" and ready["model_id"] == "whisper-small"
    assert ready["access_info"] == {"message": "MMA approved model loading", "model_path_from_config":
                                    "models/whisper-small", "vram_allocated_mb": 20.0, "quantization_level": "int8",
                                    "priority": 2}
    status = legacy(mma, {"action": "status"})
    assert status["loaded_models"]["whisper-small"]["compute_device"] == "external"
    gguf = legacy(mma, {"model_id": "tiny-a", "request_id": "q2"})
    assert gguf["status"] == "MODEL_READY" and gguf["access_info"]["quantization_level"] == "none"
    assert gguf["access_info"]["priority"] == 5 and gguf["access_info"]["vram_allocated_mb"] > 64
    assert legacy(mma, {"command": "UNLOAD_MODEL", "model_name": "whisper-small"})["status"] == "SUCCESS"
    assert "whisper-small" not in legacy(mma, {"action": "status"})["loaded_models"]


@pytest.mark.parametrize("request_, code", [
    ({"request_id": "r"}, "MISSING_MODEL_ID"),
    ({}, "MISSING_MODEL_ID"),
    ({"model_id": "nope", "request_id": "r"}, "UNKNOWN_VRAM"),
    ({"model_id": "whisper-novram", "request_id": "r"}, "UNKNOWN_VRAM"),
    ({"model_id": "broken", "request_id": "r"}, "UNKNOWN_VRAM"),
    ({"model_id": "whisper-huge", "request_id": "r"}, "INSUFFICIENT_VRAM"),
    ({"model_id": "big", "request_id": "r"}, "INSUFFICIENT_VRAM"),
    ({"model_id": "whisper-nopath", "request_id": "r"}, "MODEL_NOT_FOUND"),
])
def test_stt_errors(mma, request_, code):
    reply = legacy(mma, request_)
    assert reply["status"] == "ERROR_LOADING_MODEL" and reply["error_code"] == code
    assert reply["error_message"] and reply["request_id"] == request_.get("request_id")


def test_stt_missing_file_is_model_not_found(make_hub, tmp_path):
    hub = make_hub(model_configs=[{"model_id": "gone", "model_path": str(tmp_path / "gone.gguf"),
                                             "serving_method": "gguf_direct"}])
    reply = legacy(hub.mma, {"model_id": "gone", "request_id": "r"})
    assert reply["error_code"] == "MODEL_NOT_FOUND"


# -- native actions ------------------------------------------------------------------------------

def test_native_generate_status_select_clear(mma):
    result = call(mma, "generate", {"prompt": "hello", "model_pref": "quality", "max_tokens": 3,
                                    "conversation_id": "n1"})
    assert result["model_used"] == "tiny-b" and result["conversation_id"] == "n1"
    assert call(mma, "clear_conversation", {"conversation_id": "n1"}) == {"cleared": True}
    status = call(mma, "status")
    assert set(status["loaded_models"]) == {"tiny-b"} and status["device"] == "cpu" and status["budget_mb"] == 100.0
    chosen = call(mma, "select_model", {"task_type": "text-generation"})
    assert chosen["model_id"] == "tiny-b" and chosen["model_info"]["status"] == "online"


def test_native_errors(make_hub):
    mma = make_hub(load_policy={}).mma
    with pytest.raises(NotFound, match="No model found for preference: fast"):
        call(mma, "generate", {"prompt": "x"})
    with pytest.raises(BadRequest, match="prompt"):
        call(mma, "generate", {"model_pref": "tiny-a"})
    with pytest.raises(BadRequest, match="max_tokens"):
        call(mma, "generate", {"prompt": "x", "model_pref": "tiny-a", "max_tokens": 0})
    with pytest.raises(BadRequest, match="context"):
        call(mma, "generate", {"prompt": "hello world " * 400, "model_pref": "tiny-a"})
