"""GGUFModelManager in process, over the real core and tiny GGUF models written at test time.

Every legacy action with its legacy reply, every native action, and bad input: unknown model, corrupt GGUF,
model too big for the budget, prompt over the context size, wrong types, a full model queue.
"""
from __future__ import annotations

import threading

import pytest

from agents.model_manager_suite.handlers.gguf_model_manager import GGUFModelManager, GGUFModelManagerSettings
from agents.model_manager_suite.inference_api import ModelAPI
from bus.errors import BadRequest, Busy, Conflict, NotFound
from tests.model_manager_suite.handlers.conftest import call

LEGACY_KEYS = {"model_id", "display_name", "model_path", "n_ctx", "n_gpu_layers", "n_threads", "verbose",
               "estimated_vram_mb", "capabilities", "idle_timeout_seconds", "loaded"}


@pytest.fixture
def hub(make_hub):
    return make_hub()


@pytest.fixture
def gguf(hub) -> GGUFModelManager:
    handler = hub.gguf
    handler.start()
    return handler


def legacy(handler: GGUFModelManager, request) -> dict:
    return handler.handle_legacy(request, 5575)


# -- legacy actions ------------------------------------------------------------------------------

def test_legacy_list_models_has_the_legacy_keys(gguf):
    reply = legacy(gguf, {"action": "list_models"})
    assert reply["status"] == "success"
    models = {m["model_id"]: m for m in reply["models"]}
    assert set(models) == {"tiny-a", "tiny-b", "big", "broken"}
    for entry in models.values():
        assert set(entry) >= LEGACY_KEYS
        assert entry["verbose"] is False and entry["loaded"] is False
    assert models["tiny-a"]["model_path"] == "tiny-a.gguf"
    assert models["tiny-a"]["n_ctx"] == 256 and models["tiny-a"]["n_threads"] == 1
    assert models["tiny-a"]["estimated_vram_mb"] > 64       # weights + KV + overhead
    assert "last_used" not in models["tiny-a"]


def test_legacy_load_generate_unload_cycle(gguf):
    assert legacy(gguf, {"action": "load_model", "model_id": "tiny-a"}) == {"status": "success", "loaded": True}
    listed = {m["model_id"]: m for m in legacy(gguf, {"action": "list_models"})["models"]}
    assert listed["tiny-a"]["loaded"] is True
    reply = legacy(gguf, {"action": "generate_text", "model_id": "tiny-a", "prompt": "hello world",
                          "system_prompt": "You are a test.", "max_tokens": 8, "temperature": 0.0})
    assert reply["status"] == "success" and reply["model_id"] == "tiny-a"
    assert isinstance(reply["text"], str) and reply["using_kv_cache"] is False
    listed = {m["model_id"]: m for m in legacy(gguf, {"action": "list_models"})["models"]}
    assert listed["tiny-a"]["last_used"] > 0 and listed["tiny-a"]["idle_time"] >= 0
    assert legacy(gguf, {"action": "unload_model", "model_id": "tiny-a"}) == {"status": "success", "unloaded": True}
    again = legacy(gguf, {"action": "unload_model", "model_id": "tiny-a"})
    assert again["status"] == "error" and again["unloaded"] is False


def test_legacy_generate_loads_on_demand_and_keeps_conversations(gguf):
    first = legacy(gguf, {"action": "generate_text", "model_id": "tiny-b", "prompt": "hello", "max_tokens": 4,
                          "conversation_id": "c1"})
    second = legacy(gguf, {"action": "generate_text", "model_id": "tiny-b", "prompt": "again", "max_tokens": 4,
                           "conversation_id": "c1"})
    assert first["using_kv_cache"] is False and second["using_kv_cache"] is True
    assert legacy(gguf, {"action": "health_check"})["kv_caches_count"] == 1


def test_legacy_system_prompt_is_prepended_to_the_prompt(gguf):
    legacy(gguf, {"action": "generate_text", "model_id": "tiny-a", "prompt": "the model", "max_tokens": 1,
                  "system_prompt": "hello world", "conversation_id": "sys"})
    conv = gguf.api.engine.conversations.get("sys")
    assert conv.transcript.startswith("hello world\n\nthe model")


def test_legacy_health_check(gguf):
    legacy(gguf, {"action": "load_model", "model_id": "tiny-a"})
    reply = legacy(gguf, {"action": "health_check"})
    assert reply["status"] == "healthy" and reply["llama_cpp_available"] is True
    assert reply["models_loaded"] == 1 and reply["total_models"] == 4
    usage = reply["vram_usage"]
    assert usage["total_mb"] == 100.0 and usage["used_mb"] > 64
    assert usage["remaining_mb"] == pytest.approx(usage["total_mb"] - usage["used_mb"], abs=0.2)
    assert reply["kv_caches_count"] == 0 and isinstance(reply["timestamp"], float)


def test_legacy_health_port_and_unknown_actions(gguf):
    health = gguf.legacy_health(5576)
    assert health["status"] == "ok" and health["message"] == "GgufModelManager is healthy"
    assert legacy(gguf, {"action": "ping"}) == {"status": "error", "error": "Unknown action: ping"}
    assert legacy(gguf, {"nothing": 1}) == {"status": "error", "error": "Unknown action: None"}
    assert legacy(gguf, ["not", "an", "object"])["status"] == "error"


def test_legacy_missing_and_mistyped_fields(gguf):
    assert legacy(gguf, {"action": "load_model"}) == {"status": "error", "error": "model_id required"}
    assert legacy(gguf, {"action": "unload_model", "model_id": 7}) == {"status": "error", "error": "model_id required"}
    assert legacy(gguf, {"action": "generate_text", "model_id": "tiny-a"}) == {
        "status": "error", "error": "model_id and prompt required"}
    bad = legacy(gguf, {"action": "generate_text", "model_id": "tiny-a", "prompt": "x", "max_tokens": "many"})
    assert bad["status"] == "error" and "max_tokens" in bad["error"]
    bad = legacy(gguf, {"action": "generate_text", "model_id": "tiny-a", "prompt": "x", "temperature": -1})
    assert bad["status"] == "error" and "temperature" in bad["error"]


def test_legacy_bad_models(gguf):
    unknown = legacy(gguf, {"action": "load_model", "model_id": "nope"})
    assert unknown["status"] == "error" and unknown["loaded"] is False and "nope" in unknown["error"]
    corrupt = legacy(gguf, {"action": "load_model", "model_id": "broken"})
    assert corrupt["status"] == "error" and "not loadable" in corrupt["error"]
    big = legacy(gguf, {"action": "load_model", "model_id": "big"})
    assert big["status"] == "error" and "budget" in big["error"]
    gen = legacy(gguf, {"action": "generate_text", "model_id": "nope", "prompt": "x"})
    assert gen["status"] == "error" and "nope" in gen["error"] and set(gen) == {"status", "error"}


def test_legacy_prompt_over_the_context(gguf):
    reply = legacy(gguf, {"action": "generate_text", "model_id": "tiny-a", "prompt": "hello world " * 400})
    assert reply["status"] == "error" and "context" in reply["error"]


# -- native actions ------------------------------------------------------------------------------

def test_native_list_and_get(make_hub, tmp_path):
    gguf = make_hub(extra_dirs=(tmp_path / "more",)).gguf
    listed = call(gguf, "list_models")
    assert listed["count"] == 4
    by_id = {m["id"]: m for m in listed["models"]}
    assert by_id["broken"]["valid"] is False and by_id["broken"]["reason"]
    assert by_id["tiny-a"]["architecture"] == "llama" and by_id["tiny-a"]["aliases"] == ["fast"]
    assert {m["id"] for m in call(gguf, "list_models", {"include_invalid": "false"})["models"]} == {
        "tiny-a", "tiny-b", "big"}
    from tests.support.tiny_gguf import write_tiny_gguf
    write_tiny_gguf(tmp_path / "more" / "tiny-c.gguf", seed=9)
    assert call(gguf, "list_models", {"rescan": "true"})["count"] == 5
    one = call(gguf, "get_model", {"model_id": "fast"})
    assert one["id"] == "tiny-a" and one["estimate"]["total_mb"] > 64 and one["stats"]["loads"] == 0
    assert "metadata" in one["header"]
    assert call(gguf, "get_model", {"model_id": "broken"})["estimate"] is None


def test_native_load_pin_priority_stats_unload(gguf):
    info = call(gguf, "load_model", {"model_id": "tiny-a", "pin": True, "priority": "3"})
    assert info["model_id"] == "tiny-a" and info["pinned"] is True and info["priority"] == 3
    result = call(gguf, "predict", {"model_id": "tiny-a", "prompt": "hello", "max_tokens": 5, "seed": 1})
    assert result["model_id"] == "tiny-a" and result["completion_tokens"] >= 1
    stats = call(gguf, "model_stats", {"model_id": "tiny-a"})
    assert stats["loads"] == 1 and stats["requests"] == 1 and stats["loaded"] is True
    assert call(gguf, "unload_model", {"model_id": "tiny-a"}) == {"model_id": "tiny-a", "unloaded": True}
    assert call(gguf, "model_stats", {"model_id": "tiny-a"})["loaded"] is False


def test_native_chat_stream_and_conversation(gguf):
    chunks: list[str] = []
    result = call(gguf, "predict", {"model_id": "tiny-b", "prompt": "hello", "max_tokens": 6, "stream": True,
                                    "conversation_id": "s1"}, stream=chunks.append)
    assert chunks and "".join(chunks) == result["text"]
    again = call(gguf, "predict", {"model_id": "tiny-b", "prompt": "more", "max_tokens": 2, "conversation_id": "s1"})
    assert again["using_kv_cache"] is True
    assert call(gguf, "clear_conversation", {"conversation_id": "s1"}) == {"cleared": True}
    chat = call(gguf, "predict", {"model_id": "tiny-b", "max_tokens": 4,
                                  "messages": [{"role": "user", "content": "hello"}]})
    assert chat["message"]["role"] == "assistant"


def test_native_swap_repoints_the_alias(make_hub):
    hub = make_hub(ram_budget_mb=150.0)             # old and new coexist during a swap
    gguf = hub.gguf
    call(gguf, "load_model", {"model_id": "tiny-a"})
    swapped = call(gguf, "swap", {"model_id": "fast", "to": "tiny-b"})
    assert swapped["model_id"] == "tiny-b" and swapped["previous"] == "tiny-a" and "fast" in swapped["aliases"]
    assert [m["model_id"] for m in hub.loader.loaded()] == ["tiny-b"]
    assert call(gguf, "predict", {"model_id": "fast", "prompt": "hi", "max_tokens": 2})["model_id"] == "tiny-b"
    reloaded = call(gguf, "swap", {"model_id": "tiny-b"})     # same model, reloaded from its file
    assert reloaded["model_id"] == "tiny-b" and reloaded["previous"] == "tiny-b"
    call(gguf, "load_model", {"model_id": "tiny-a"})
    call(gguf, "load_model", {"model_id": "big"})              # 111 MB: both tiny models are evicted
    assert [m["model_id"] for m in hub.loader.loaded()] == ["big"]
    assert hub.suite.topics().count("model.evicted") == 2


def test_lru_eviction_within_the_budget(gguf, hub):
    call(gguf, "load_model", {"model_id": "tiny-a"})
    call(gguf, "load_model", {"model_id": "tiny-b"})         # budget holds one: tiny-a is evicted
    assert [m["model_id"] for m in hub.loader.loaded()] == ["tiny-b"]
    assert "model.evicted" in hub.suite.topics()
    call(gguf, "load_model", {"model_id": "tiny-b", "pin": True})
    with pytest.raises(Conflict, match="budget"):
        call(gguf, "load_model", {"model_id": "tiny-a"})     # the pinned model is never evicted


def test_native_gpu_status_reports_cpu_mode(gguf):
    status = call(gguf, "gpu_status")
    assert status["gpu"]["mode"] in ("cpu", "gpu") and status["gpu"]["reason"]
    assert status["budget"]["devices"]["cpu"]["capacity_mb"] == 100.0


def test_native_errors(gguf):
    with pytest.raises(NotFound):
        call(gguf, "load_model", {"model_id": "nope"})
    with pytest.raises(NotFound):
        call(gguf, "predict", {"model_id": "nope", "prompt": "x"})
    with pytest.raises(Conflict, match="not loadable"):
        call(gguf, "load_model", {"model_id": "broken"})
    with pytest.raises(Conflict, match="budget") as too_big:
        call(gguf, "load_model", {"model_id": "big"})
    assert too_big.value.details["needed_mb"] > 100
    with pytest.raises(BadRequest, match="context"):
        call(gguf, "predict", {"model_id": "tiny-a", "prompt": "hello world " * 400})
    with pytest.raises(BadRequest, match="exactly one"):
        call(gguf, "predict", {"model_id": "tiny-a"})
    with pytest.raises(BadRequest, match="max_tokens"):
        call(gguf, "predict", {"model_id": "tiny-a", "prompt": "x", "max_tokens": "lots"})
    with pytest.raises(BadRequest, match="model_id"):
        call(gguf, "predict", {"prompt": "x"})
    with pytest.raises(BadRequest, match="pin"):
        call(gguf, "load_model", {"model_id": "tiny-a", "pin": "maybe"})
    with pytest.raises(BadRequest, match="unknown field"):
        call(gguf, "predict", {"model_id": "tiny-a", "prompt": "x", "bogus": 1})


def test_full_model_queue_answers_busy(make_hub):
    hub = make_hub(queue_limit=1)
    gguf = hub.gguf
    call(gguf, "load_model", {"model_id": "tiny-a"})
    worker = hub.loader.entry("tiny-a").worker
    release, started = threading.Event(), threading.Event()
    running = worker.submit(lambda llm: (started.set(), release.wait(30)))   # occupies the model thread
    assert started.wait(10)
    queued = worker.submit(lambda llm: None)                   # fills the queue of 1
    try:
        with pytest.raises(Busy):
            call(gguf, "predict", {"model_id": "tiny-a", "prompt": "x", "max_tokens": 1})
        busy = legacy(gguf, {"action": "generate_text", "model_id": "tiny-a", "prompt": "x"})
        assert busy["status"] == "error" and "queued" in busy["error"]
    finally:
        release.set()
    running.result(10)
    queued.result(10)
    assert call(gguf, "predict", {"model_id": "tiny-a", "prompt": "x", "max_tokens": 1})["model_id"] == "tiny-a"


def test_every_model_request_is_recorded_once(make_hub):
    hub = make_hub()
    core = hub.parts.core
    seen: list[str] = []
    api = ModelAPI(core.registry, core.loader, core.store, core.engine, core.settings, record_usage=seen.append)
    gguf = GGUFModelManager(api, GGUFModelManagerSettings())
    call(gguf, "load_model", {"model_id": "fast"})
    call(gguf, "predict", {"model_id": "tiny-a", "prompt": "x", "max_tokens": 1})
    legacy(gguf, {"action": "generate_text", "model_id": "tiny-a", "prompt": "x", "max_tokens": 1})
    assert seen == ["tiny-a", "tiny-a", "tiny-a"]


def test_the_composed_hub_records_usage_in_the_predictive_loader(make_hub):
    hub = make_hub()
    call(hub.gguf, "load_model", {"model_id": "fast"})
    call(hub.mma, "generate", {"prompt": "x", "max_tokens": 1})
    assert hub.parts.preloader.usage.counts_since(0) == [("tiny-a", 2)]
