"""GPU mode decisions on plain values, the build/profile mismatch on this CPU build, and RAM accounting.

These machines have no NVIDIA driver and a CPU build of llama-cpp-python: what needs a GPU is exercised by
``make gpu-check`` (tests/gpu/gpu_check.py), whose refusal is tested below. With a build that offloads, the
CPU-build tests are skipped.
"""
from __future__ import annotations

import logging
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import llama_cpp
import pytest

from agents.model_manager_suite.budget import BudgetExceeded, MemoryBudget, layers_that_fit, placement
from agents.model_manager_suite.core import open_model_core
from agents.model_manager_suite.models_settings import ModelsSettings
from bus.settings import from_mapping
from agents.model_manager_suite.gpu import (MODE_CPU, MODE_GPU, MODE_NO_OFFLOAD, GpuMonitor, effective_mode,
                                            offload_check, visible_nvml_indices)
from agents.model_manager_suite.registry import ModelRegistry
from agents.model_manager_suite.store import ModelStore
from tests.support.hubproc import HubProcess
from tests.support.tiny_gguf import write_tiny_gguf

ROOT = Path(__file__).resolve().parents[2]
OFFLOADS = bool(llama_cpp.llama_supports_gpu_offload())
cpu_build_only = pytest.mark.skipif(OFFLOADS, reason="this build offloads to a GPU: make gpu-check covers it")
UUIDS = ["GPU-8a2f0c11-aaaa", "GPU-8a2f0c11-bbbb", "GPU-ffff0000-cccc"]


def test_effective_mode_needs_a_gpu_and_a_build_that_offloads() -> None:
    assert effective_mode(gpu_present=True, offload_supported=True) == MODE_GPU == "gpu"
    assert effective_mode(gpu_present=True, offload_supported=False) == MODE_NO_OFFLOAD
    assert MODE_NO_OFFLOAD == "cpu (GPU present, build without offload)"
    assert effective_mode(gpu_present=False, offload_supported=True) == MODE_CPU == "cpu"
    assert effective_mode(gpu_present=False, offload_supported=False) == MODE_CPU


def test_offload_check_fails_only_when_layers_are_asked_for_and_cannot_be_offloaded() -> None:
    assert offload_check(0, offload_supported=False, gpu_present=True)[0]
    assert offload_check(-1, offload_supported=True, gpu_present=True)[0]
    ok, message = offload_check(-1, offload_supported=False, gpu_present=True)
    assert not ok and "an NVIDIA GPU is present" in message and "make install GPU=cuda" in message
    ok, message = offload_check(20, offload_supported=False, gpu_present=False)
    assert not ok and "n_gpu_layers 20" in message and "RAM budget" in message


def test_cuda_visible_devices_maps_cuda_indices_to_nvml_indices() -> None:
    assert visible_nvml_indices(None, UUIDS) == [0, 1, 2]
    assert visible_nvml_indices("2,0", UUIDS) == [2, 0]
    assert visible_nvml_indices("", UUIDS) == [] and visible_nvml_indices("-1", UUIDS) == []
    assert visible_nvml_indices("1,7,0", UUIDS) == [1]                # CUDA stops at the first unknown entry
    assert visible_nvml_indices("GPU-ffff,0", UUIDS) == [2, 0]        # unique UUID prefix
    assert visible_nvml_indices("GPU-8a2f0c11", UUIDS) == []          # ambiguous prefix names no device
    assert visible_nvml_indices("1,1", UUIDS) == [1]


def test_partial_offload_layer_count() -> None:
    # gemma-3-270m Q4_K_M: 18 layers, 241 MB of weights, 9 MB of KV cache at n_ctx 512, 64 MB overhead
    assert layers_that_fit(1000.0, 241.0, 9.0, 64.0, 18) == 18
    assert layers_that_fit(200.0, 241.0, 9.0, 64.0, 18) == 9          # (200 - 64) // (250 / 18)
    assert layers_that_fit(70.0, 241.0, 9.0, 64.0, 18) == 0
    assert layers_that_fit(50.0, 241.0, 9.0, 64.0, 18) == 0
    assert layers_that_fit(500.0, 0.0, 0.0, 64.0, 18) == 18
    assert layers_that_fit(500.0, 241.0, 9.0, 64.0, 0) == 0


def test_partial_estimate_charges_the_rest_to_ram(tmp_path: Path, store: ModelStore) -> None:
    write_tiny_gguf(tmp_path / "m" / "x.gguf", n_layer=4, n_embd=64, n_head=4, n_head_kv=2)
    settings = from_mapping(ModelsSettings, {"dirs": [str(tmp_path / "m")], "overhead_mb": 10.0})
    registry = ModelRegistry(store, settings)
    registry.rescan()
    record = registry.get("x")
    budget = MemoryBudget(GpuMonitor(enabled=False), settings)
    full = budget.estimate(record, 256, "cuda:0", n_gpu_layers=-1)
    part = budget.estimate(record, 256, "cuda:0", n_gpu_layers=1)
    assert full.ram_mb == 0 and abs(part.weights_mb - full.weights_mb / 4) < 1e-9
    assert abs(part.ram_mb - 0.75 * (full.weights_mb + full.kv_cache_mb)) < 1e-9
    assert budget.estimate(record, 256, "cpu", n_gpu_layers=1).ram_mb == 0
    assert placement("cuda:0", 1, record.header) == "cuda:0/1"
    assert placement("cuda:0", -1, record.header) == placement("cuda:0", 4, record.header) == "cuda:0"
    assert placement("cpu", 1, record.header) == "cpu"
    measured_full = {"measured_memory_mb": 900.0, "measured_version": record.version, "measured_n_ctx": 256,
                     "measured_device": "cuda:0"}
    assert budget.estimate(record, 256, "cuda:0", -1, measured_full).total_mb == 900.0
    assert budget.estimate(record, 256, "cuda:0", 1, measured_full).measured_mb is None


def test_vram_fraction_is_validated() -> None:
    with pytest.raises(ValueError, match="vram_fraction"):
        MemoryBudget(GpuMonitor(enabled=False), ModelsSettings(vram_fraction=1.5))


@cpu_build_only
def test_this_machine_is_cpu_mode_with_a_build_that_cannot_offload() -> None:
    gpu = GpuMonitor()
    status = gpu.status()
    assert status["offload_supported"] is False
    assert status["mode"] == effective_mode(status["gpu_present"], False)
    if not status["gpu_present"]:                                    # this machine: no NVIDIA driver
        assert status["mode"] == "cpu" and status["devices"] == []
    assert "no GPU offload" in status["offload_reason"]
    assert MemoryBudget(GpuMonitor(offload_supported=True), ModelsSettings()).device_for(-1) == "cpu"


@cpu_build_only
def test_gpu_layers_on_a_cpu_build_load_on_cpu_and_charge_ram(make_suite, models_dir: Path) -> None:
    write_tiny_gguf(models_dir / "tiny-b.gguf", seed=2)
    suite = make_suite(n_gpu_layers=-1, ram_budget_mb=100.0, overhead_mb=64.0)   # room for one tiny model
    info = suite.loader.load("tiny-a")
    assert info["device"] == "cpu" and info["n_gpu_layers"] == 0 and info["estimate"]["ram_mb"] == 0
    cpu = suite.loader.status()["devices"]["cpu"]
    assert cpu["reserved_mb"] == info["reserved_mb"] > 64 and cpu["capacity_mb"] == 100.0
    assert not any(d.startswith("cuda") for d in suite.loader.status()["devices"])
    with pytest.raises(BudgetExceeded) as refused:
        suite.loader.load("tiny-b", evict=False)
    assert refused.value.details["device"] == "cpu"


@cpu_build_only
def test_core_reports_the_mismatch_once_and_in_health(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    write_tiny_gguf(tmp_path / "models" / "tiny.gguf", seed=5)
    settings = ModelsSettings(dirs=(str(tmp_path / "models"),), n_gpu_layers=-1, rescan_interval_s=0.0,
                              idle_check_interval_s=0.0)
    core = open_model_core(settings, None, tmp_path / "data")
    try:
        with caplog.at_level(logging.INFO, logger="agents.model_manager_suite.core"):
            core.start()
        errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
        assert len(errors) == 1 and "make install GPU=cuda" in errors[0].getMessage()
        ok, detail = core.health_checks()["gpu_offload"]
        assert not ok and detail["mode"].startswith("cpu") and detail["offload_supported"] is False
    finally:
        core.stop()
    quiet = open_model_core(replace(settings, n_gpu_layers=0), None, tmp_path / "data2")
    try:
        assert quiet.health_checks()["gpu_offload"][0]
    finally:
        quiet.stop()


@cpu_build_only
def test_hub_with_a_gpu_profile_on_a_cpu_build(tmp_path: Path) -> None:
    """The MainPC profile's n_gpu_layers -1 on this CPU build: the hub starts, says why, serves from RAM."""
    write_tiny_gguf(tmp_path / "models" / "tiny-a.gguf", seed=1)
    config = {"models": {"dirs": [str(tmp_path / "models")], "n_gpu_layers": -1, "ram_budget_mb": 150,
                         "n_ctx": 128, "n_threads": 1, "rescan_interval_s": 0.0},
              "predictive_loader": {"preload_enabled": False}}
    with HubProcess("model_manager_suite", tmp_path / "data", config=config) as hub:
        client = hub.client()
        health = client.call("hub", "health")
        check = health["checks"]["gpu_offload"]
        assert health["status"] == "degraded" and check["ok"] is False
        assert "make install GPU=cuda" in check["detail"]["message"]
        status = client.call("GGUFModelManager", "gpu_status")
        assert status["gpu"]["mode"].startswith("cpu") and status["gpu"]["offload_supported"] is False
        client.call("GGUFModelManager", "load_model", {"model_id": "tiny-a"})
        status = client.call("GGUFModelManager", "gpu_status")
        [model] = status["budget"]["loaded"]
        assert model["device"] == "cpu" and model["n_gpu_layers"] == 0
        assert status["budget"]["devices"]["cpu"]["reserved_mb"] == model["reserved_mb"] > 0
        reply = hub.legacy_request(5575, {"action": "generate_text", "model_id": "tiny-a", "prompt": "hi",
                                          "max_tokens": 2})
        assert reply["status"] == "success"
        assert hub.log_tail(400).count("GPU OFFLOAD UNAVAILABLE") == 1


@cpu_build_only
def test_gpu_check_refuses_without_a_gpu() -> None:
    proc = subprocess.run([sys.executable, "-m", "tests.gpu.gpu_check"], cwd=ROOT, capture_output=True, text=True,
                          timeout=120, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    reason = "no NVIDIA GPU visible" if not GpuMonitor().gpu_present else "llama-cpp-python cannot offload"
    assert lines[-1].startswith(f"gpu-check refused: {reason}")


def test_build_choice_script() -> None:
    script = ROOT / "config" / "install" / "llama_build.sh"
    env = {**os.environ, "PATH": "/usr/bin:/bin", "CUDA_HOME": str(ROOT / "no-such-toolkit")}
    env.pop("CUDACXX", None)
    cpu = subprocess.run([str(script), "cmake-args", "auto", "/nonexistent-venv"], capture_output=True, text=True,
                         env=env, timeout=60)
    assert cpu.returncode == 0 and cpu.stdout.strip() == "-DGGML_NATIVE=OFF"
    assert "llama-cpp-python build: cpu (GPU=auto: NVML reports" in cpu.stderr
    cuda = subprocess.run([str(script), "cmake-args", "cuda", "/nonexistent-venv"], capture_output=True, text=True,
                          env=env, timeout=60)
    assert cuda.returncode == 2 and "GPU=cuda but no CUDA toolkit found" in cuda.stderr
    bad = subprocess.run([str(script), "cmake-args", "rocm", "/nonexistent-venv"], capture_output=True, text=True,
                         env=env, timeout=60)
    assert bad.returncode == 2 and "GPU must be auto, cuda or cpu" in bad.stderr
