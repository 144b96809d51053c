"""Settings section ``models`` of ModelManagerSuite (registry, budget, loader, inference engine).

The hub merges ``DEFAULTS`` into its settings tree and passes ``settings["models"]`` (plus the data
directory) to the components; the environment override ``MODELS_DIR`` is applied by the hub.
"""
from __future__ import annotations

from typing import Any

DEFAULTS: dict[str, Any] = {
    "models": {
        "dirs": ["./models"],          # scanned for *.gguf (recursively)
        "n_ctx": 2048,                 # default context size; capped by the model's own context_length
        "n_threads": 2,                # llama.cpp threads per model (always passed explicitly)
        "n_gpu_layers": 0,             # layers offloaded to the GPU; forced to 0 in CPU mode
        "main_gpu": 0,                 # NVML index of the device GPU loads go to
        "use_mmap": True,
        "ram_budget_mb": 0.0,          # CPU mode budget; 0 = 50% of physical RAM
        "vram_fraction": 0.8,          # GPU mode budget: fraction of the device's memory (legacy 80%)
        "overhead_mb": 64.0,           # compute buffers etc. added to weights + KV cache in estimates
        "kv_bytes_per_element": 2.0,   # llama.cpp KV cache type f16
        "idle_unload_s": 300.0,        # unload a model unused this long (0 = never); per-model idle_timeout_seconds wins
        "idle_check_interval_s": 5.0,
        "rescan_interval_s": 10.0,     # poll of the model dirs (0 = no polling)
        "reload_on_change": True,      # a loaded model whose file changed is hot-swapped to the new version
        "queue_limit": 16,             # pending requests per model beyond which the reply is `busy`
        "lock_timeout_s": 120.0,       # wait for the per-device lock held by another process
        "max_conversations": 50,
        "conversation_ttl_s": 3600.0,
        "model_configs": [],           # legacy main_pc_settings.model_configs entries (list, or a dict keyed by id)
        "load_policy": {},             # legacy llm_config.yaml load_policy: model_pref -> model id
        "pinned": [],                  # model ids never evicted nor idle-unloaded
    }
}


def models_settings(section: dict[str, Any] | None = None) -> dict[str, Any]:
    """The ``models`` section with every missing key filled from ``DEFAULTS``."""
    merged = dict(DEFAULTS["models"])
    merged.update(section or {})
    return merged
