"""Settings section ``models`` of ModelManagerSuite: the model layer (registry, budget, loader, inference engine).

``hub.py`` hands one ``ModelsSettings`` to each part of the model layer; the environment override
``MODELS_DIR`` (``dirs``) is applied when the settings are loaded.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from bus.settings import SettingError, setting


@dataclass(frozen=True)
class ModelsSettings:
    dirs: tuple[str, ...] = ("./models",)        # scanned for *.gguf (recursively)
    n_ctx: int = setting(2048, minimum=16, maximum=1 << 20)  # default context; capped by the model's context_length
    n_threads: int = setting(2, minimum=1, maximum=1024)     # llama.cpp threads per model (always passed explicitly)
    n_gpu_layers: int = setting(0, minimum=-1)  # layers offloaded to the GPU (-1: all); forced to 0 in CPU mode
    main_gpu: int = setting(0, minimum=0)       # NVML index of the device GPU loads go to
    use_mmap: bool = True
    ram_budget_mb: float = setting(0.0, minimum=0.0)           # CPU mode budget; 0 = 50% of physical RAM
    vram_fraction: float = setting(0.8, maximum=1.0)            # GPU budget: fraction of device memory, in (0, 1]
    overhead_mb: float = setting(64.0, minimum=0.0)             # compute buffers etc. added to weights + KV cache
    kv_bytes_per_element: float = setting(2.0, maximum=8.0)    # llama.cpp KV cache type f16
    idle_unload_s: float = setting(300.0, minimum=0.0)  # unload a model unused this long (0 = never); per-model wins
    idle_check_interval_s: float = setting(5.0, minimum=0.0)  # 0 = no idle-unload task
    rescan_interval_s: float = setting(10.0, minimum=0.0)     # poll of the model dirs (0 = no polling)
    reload_on_change: bool = True               # a loaded model whose file changed is hot-swapped to the new version
    queue_limit: int = setting(16, minimum=1)   # pending requests per model beyond which the reply is `busy`
    lock_timeout_s: float = setting(120.0, minimum=0.0)       # wait for the per-device lock held by another process
    max_conversations: int = setting(50, minimum=1)
    conversation_ttl_s: float = setting(3600.0, minimum=0.0)
    model_configs: Any = field(default_factory=list)  # legacy main_pc_settings.model_configs (list, or dict by id)
    load_policy: dict[str, Any] = field(default_factory=dict)  # legacy llm_config.yaml load_policy: pref -> id
    pinned: tuple[str, ...] = ()                # model ids never evicted nor idle-unloaded

    def __post_init__(self) -> None:
        if not 0 < self.vram_fraction <= 1:
            raise SettingError("vram_fraction", f"must be in (0, 1], got {self.vram_fraction!r}")
        if not self.kv_bytes_per_element > 0:
            raise SettingError("kv_bytes_per_element", f"must be > 0, got {self.kv_bytes_per_element!r}")
