"""The real gemma-3-270m Q4_K_M model (253 MB) served by ModelManagerSuite as a separate process: list, load,
generate (legacy GGUFModelManager and ModelManagerAgent ports, native port with streaming), swap to and
from a tiny model, eviction, unload, and a prompt over the context size.

Budget 700 MB with 200 MB overhead per model: gemma (~444 MB estimated) plus one tiny model (~200 MB) fit,
a third model evicts the least recently used.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from bus.errors import BadRequest
from tests.support.hubproc import HubProcess
from tests.support.tiny_gguf import write_tiny_gguf

pytestmark = pytest.mark.slow
GEMMA = "gemma-3-270m-q4_k_m"
GGUF, MMA = 5575, 5570


@pytest.fixture(scope="module")
def hub(gemma_path: Path, tmp_path_factory: pytest.TempPathFactory):
    base = tmp_path_factory.mktemp("gemma-hub")
    tiny_dir = base / "tiny"
    write_tiny_gguf(tiny_dir / "tiny-a.gguf", seed=1)
    write_tiny_gguf(tiny_dir / "tiny-b.gguf", seed=2)
    config = {"models": {"dirs": [str(gemma_path.parent), str(tiny_dir)], "ram_budget_mb": 700,
                         "overhead_mb": 200.0, "n_ctx": 512, "n_threads": 2, "rescan_interval_s": 0.0,
                         "load_policy": {"fast": "tiny-a", "quality": GEMMA}},
              "predictive_loader": {"preload_enabled": False}}    # no background loads between assertions
    with HubProcess("model_manager_suite", base / "data", config=config) as process:
        yield process


@pytest.fixture(scope="module")
def client(hub):
    with hub.client(timeout=120) as native:
        yield native


def loaded_ids(client) -> list[str]:
    return [info["model_id"] for info in client.call("GGUFModelManager", "gpu_status")["budget"]["loaded"]]


def test_legacy_list_load_generate_unload(hub):
    models = {m["model_id"]: m for m in hub.legacy_request(GGUF, {"action": "list_models"})["models"]}
    assert GEMMA in models and models[GEMMA]["n_ctx"] == 512 and models[GEMMA]["estimated_vram_mb"] > 235
    assert hub.legacy_request(GGUF, {"action": "load_model", "model_id": GEMMA}, timeout=120)["loaded"] is True
    reply = hub.legacy_request(GGUF, {"action": "generate_text", "model_id": GEMMA,
                                      "prompt": "The capital of France is", "max_tokens": 12, "temperature": 0.0},
                               timeout=120)
    assert reply["status"] == "success" and reply["text"].strip()
    routed = hub.legacy_request(MMA, {"action": "generate", "model_pref": "quality", "prompt": "Once upon a time",
                                      "params": {"max_tokens": 12}}, timeout=120)
    assert routed["status"] == "ok" and routed["model_used"] == GEMMA and routed["response_text"].strip()
    assert hub.legacy_request(GGUF, {"action": "unload_model", "model_id": GEMMA})["unloaded"] is True


def test_native_stream_swap_evict(client):
    client.call("GGUFModelManager", "load_model", {"model_id": "tiny-a"})
    swapped = client.call("GGUFModelManager", "swap", {"model_id": "fast", "to": GEMMA}, timeout=120)
    assert swapped["model_id"] == GEMMA and swapped["previous"] == "tiny-a" and "fast" in swapped["aliases"]
    assert loaded_ids(client) == [GEMMA]
    items = list(client.stream("GGUFModelManager", "predict", {"model_id": "fast", "prompt": "Hello, my name is",
                                                                "max_tokens": 12, "stream": True}, timeout=120))
    assert len(items) > 2 and "".join(items[:-1]) == items[-1]["text"] and items[-1]["model_id"] == GEMMA
    client.call("GGUFModelManager", "load_model", {"model_id": "tiny-b"})
    client.call("GGUFModelManager", "load_model", {"model_id": "tiny-a"})      # gemma is the LRU: evicted
    assert loaded_ids(client) == ["tiny-a", "tiny-b"]
    stats = client.call("GGUFModelManager", "model_stats", {"model_id": GEMMA})
    assert stats["loads"] >= 1 and stats["tokens_generated"] >= 1 and stats["loaded"] is False
    back = client.call("GGUFModelManager", "swap", {"model_id": "fast", "to": "tiny-a"})
    assert back["model_id"] == "tiny-a"


def test_prompt_over_the_context(client, hub):
    with pytest.raises(BadRequest, match="context"):
        client.call("GGUFModelManager", "predict", {"model_id": GEMMA, "prompt": "word " * 700}, timeout=120)
    reply = hub.legacy_request(GGUF, {"action": "generate_text", "model_id": GEMMA, "prompt": "word " * 700},
                               timeout=120)
    assert reply["status"] == "error" and "context" in reply["error"]
