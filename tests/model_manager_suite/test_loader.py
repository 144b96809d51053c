"""Loader: load/generate/unload, budget refusal, LRU eviction, pinning, priorities, idle unload,
hot swap, and the per-device lock seen by a second process."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from agents.model_manager_suite.budget import BudgetExceeded
from bus.errors import Conflict, Unavailable
from tests.support.tiny_gguf import write_not_gguf, write_tiny_gguf

ROOT = Path(__file__).resolve().parents[2]
# three tiny models of ~100 MB estimated each (overhead dominates), two fit in 250 MB
TIGHT = {"overhead_mb": 100.0, "ram_budget_mb": 250}


@pytest.fixture
def three_models(models_dir: Path) -> Path:
    write_tiny_gguf(models_dir / "tiny-b.gguf", seed=2, name="tiny b")
    write_tiny_gguf(models_dir / "tiny-c.gguf", seed=3, name="tiny c")
    return models_dir


def test_load_generate_unload(make_suite, models_dir: Path) -> None:
    suite = make_suite()
    info = suite.loader.load("tiny-a")
    assert info["model_id"] == "tiny-a" and info["device"] == "cpu" and info["n_ctx"] == 256
    assert suite.loader.is_loaded("tiny-a")
    out = suite.engine.complete("tiny-a", "hello world", max_tokens=8, temperature=0.0)
    assert isinstance(out["text"], str) and out["completion_tokens"] > 0 and out["prompt_tokens"] > 0
    assert out["version"] == info["version"]
    assert suite.loader.unload("tiny-a") is True
    assert not suite.loader.is_loaded("tiny-a")
    assert suite.loader.unload("tiny-a") is False
    assert suite.topics() == ["model.loaded", "model.unloaded"]
    loaded_event = suite.events.events[0][1]
    assert loaded_event["model_id"] == "tiny-a" and loaded_event["memory_mb"] >= 0
    stats = suite.engine.stats("tiny-a")
    assert stats["loads"] == 1 and stats["requests"] == 1 and stats["tokens_generated"] == out["completion_tokens"]
    assert stats["loaded"] is False and stats["last_used"] is not None
    row = suite.store.get_model("tiny-a")
    assert row["measured_memory_mb"] is not None and row["measured_n_ctx"] == 256


def test_load_is_idempotent_and_autoload(make_suite, models_dir: Path) -> None:
    suite = make_suite()
    first = suite.loader.load("tiny-a")
    assert suite.loader.load("tiny-a")["loaded_at"] == first["loaded_at"]
    suite.loader.unload("tiny-a")
    suite.engine.complete("tiny-a", "hi", max_tokens=2)            # loads on demand
    assert suite.loader.is_loaded("tiny-a")
    suite.loader.unload("tiny-a")
    with pytest.raises(Unavailable):
        suite.engine.complete("tiny-a", "hi", max_tokens=2, autoload=False)


def test_invalid_model_is_refused(make_suite, models_dir: Path) -> None:
    write_not_gguf(models_dir / "junk.gguf")
    suite = make_suite()
    with pytest.raises(Conflict, match="not loadable: not a GGUF file"):
        suite.loader.load("junk")
    [(topic, report)] = suite.events.events          # sent on to the ErrorBus by the hub
    assert topic == "hub.error" and report["error_type"] == "model_load_failed"
    assert report["severity"] == "ERROR" and report["details"]["model_id"] == "junk"


def test_budget_refusal_names_needed_and_free(make_suite, models_dir: Path) -> None:
    suite = make_suite(overhead_mb=100.0, ram_budget_mb=50)
    with pytest.raises(BudgetExceeded) as info:
        suite.loader.load("tiny-a")
    assert isinstance(info.value, Conflict)
    assert "needs 100 MB" in info.value.message and "only 50 MB" in info.value.message
    assert info.value.details["needed_mb"] > info.value.details["free_mb"]
    assert suite.loader.loaded() == [] and suite.topics() == ["hub.error"]     # the failed load, nothing else


def test_lru_eviction(make_suite, three_models: Path) -> None:
    suite = make_suite(**TIGHT)
    suite.loader.load("tiny-a")
    suite.loader.load("tiny-b")
    suite.engine.complete("tiny-a", "use a", max_tokens=2)       # b is now least recently used
    suite.loader.load("tiny-c")
    assert sorted(m["model_id"] for m in suite.loader.loaded()) == ["tiny-a", "tiny-c"]
    evicted = [f for t, f in suite.events.events if t == "model.evicted"]
    assert [(e["model_id"], e["for_model"]) for e in evicted] == [("tiny-b", "tiny-c")]


def test_pinned_models_are_not_evicted(make_suite, three_models: Path) -> None:
    suite = make_suite(**TIGHT)
    suite.loader.load("tiny-a", pin=True)
    suite.loader.load("tiny-b", pin=True)
    with pytest.raises(BudgetExceeded):
        suite.loader.load("tiny-c")
    assert sorted(m["model_id"] for m in suite.loader.loaded()) == ["tiny-a", "tiny-b"]
    assert suite.loader.unload_idle(now=time.monotonic() + 10_000) == []
    write_tiny_gguf(three_models / "tiny-d.gguf", seed=4)
    suite.registry.rescan()                                  # new record objects: pins still apply
    assert [m["pinned"] for m in suite.loader.loaded()] == [True, True]
    suite.registry.set_pinned("tiny-b", False)
    suite.loader.load("tiny-c")
    assert sorted(m["model_id"] for m in suite.loader.loaded()) == ["tiny-a", "tiny-c"]


def test_priority_protects_from_lower_priority_loads(make_suite, three_models: Path) -> None:
    suite = make_suite(**TIGHT)
    suite.loader.load("tiny-a", priority=5)
    suite.loader.load("tiny-b", priority=5)
    with pytest.raises(BudgetExceeded):
        suite.loader.load("tiny-c")                          # priority 0 cannot evict priority 5
    suite.loader.load("tiny-c", priority=5)                  # equal priority: LRU applies
    assert sorted(m["model_id"] for m in suite.loader.loaded()) == ["tiny-b", "tiny-c"]


def test_preload_does_not_evict(make_suite, three_models: Path) -> None:
    suite = make_suite(**TIGHT)
    suite.loader.load("tiny-a")
    suite.loader.load("tiny-b")
    assert suite.loader.estimate("tiny-c")["fits"] is False
    with pytest.raises(BudgetExceeded, match="preload does not evict"):
        suite.loader.load("tiny-c", evict=False, reason="preload")
    assert len(suite.loader.loaded()) == 2


def test_model_in_use_is_not_evicted(make_suite, three_models: Path) -> None:
    suite = make_suite(**TIGHT)
    suite.loader.load("tiny-a")
    suite.loader.load("tiny-b")
    with suite.loader.lease("tiny-a"), suite.loader.lease("tiny-b"), pytest.raises(BudgetExceeded):
        suite.loader.load("tiny-c")
    suite.loader.load("tiny-c")
    assert len(suite.loader.loaded()) == 2


def test_idle_unload(make_suite, models_dir: Path) -> None:
    configs = [{"model_id": "short", "serving_method": "gguf_direct", "model_path": "tiny-a.gguf",
                "idle_timeout_seconds": 30}]
    write_tiny_gguf(models_dir / "tiny-b.gguf", seed=2)
    suite = make_suite(idle_unload_s=300.0, model_configs=configs)
    suite.loader.load("short")
    suite.loader.load("tiny-b")
    now = time.monotonic()
    assert suite.loader.unload_idle(now=now + 10) == []
    assert suite.loader.unload_idle(now=now + 31) == ["short"]
    assert suite.loader.unload_idle(now=now + 301) == ["tiny-b"]
    assert [f["reason"] for t, f in suite.events.events if t == "model.unloaded"] == ["idle", "idle"]


def test_idle_thread_unloads(make_suite, models_dir: Path) -> None:
    suite = make_suite(idle_unload_s=0.2, idle_check_interval_s=0.05)
    suite.loader.load("tiny-a")
    suite.loader.start()
    deadline = time.monotonic() + 10
    while suite.loader.is_loaded("tiny-a") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not suite.loader.is_loaded("tiny-a")


def test_hot_swap_reload_keeps_old_model_serving(make_suite, models_dir: Path) -> None:
    suite = make_suite(reload_on_change=False)
    old = suite.loader.load("tiny-a")
    write_tiny_gguf(models_dir / "tiny-a.gguf", seed=99)          # a new version of the same model
    assert suite.registry.rescan().changed == ["tiny-a"]
    assert suite.loader.entry("tiny-a").record.version == old["version"]   # not reloaded by itself
    served_during_swap = []

    def warmup(worker) -> None:
        assert worker.version != old["version"]
        served_during_swap.append(suite.engine.complete("tiny-a", "during", max_tokens=2)["version"])

    new = suite.loader.swap("tiny-a", warmup=warmup)
    assert served_during_swap == [old["version"]]
    assert new["version"] != old["version"] and new["previous_version"] == old["version"]
    assert suite.engine.complete("tiny-a", "after", max_tokens=2)["version"] == new["version"]
    unloaded = [f for t, f in suite.events.events if t == "model.unloaded"]
    assert [(u["version"], u["reason"]) for u in unloaded] == [(old["version"], "swapped")]


def test_file_change_triggers_reload(make_suite, models_dir: Path) -> None:
    suite = make_suite()
    old = suite.loader.load("tiny-a")["version"]
    write_tiny_gguf(models_dir / "tiny-a.gguf", seed=42)
    suite.registry.rescan()
    deadline = time.monotonic() + 20
    while suite.loader.entry("tiny-a").record.version == old and time.monotonic() < deadline:
        time.sleep(0.05)
    assert suite.loader.entry("tiny-a").record.version == suite.registry.get("tiny-a").version != old


def test_swap_alias_to_another_model(make_suite, three_models: Path) -> None:
    suite = make_suite(load_policy={"fast": "tiny-a", "quality": "tiny-c"})
    suite.engine.complete("fast", "hi", max_tokens=2)
    assert suite.loader.is_loaded("tiny-a")
    result = suite.loader.swap("fast", "tiny-b")
    assert result["model_id"] == "tiny-b" and result["previous"] == "tiny-a" and result["aliases"] == ["fast"]
    assert suite.loader.aliases == {"fast": "tiny-b", "quality": "tiny-c"}
    assert not suite.loader.is_loaded("tiny-a")
    assert suite.engine.complete("fast", "hi", max_tokens=2)["model_id"] == "tiny-b"


LOCK_PROBE = """
import json, sys
sys.path.insert(0, sys.argv[1])
from agents.model_manager_suite.devlock import DeviceLock
lock = DeviceLock(sys.argv[2], "cpu", timeout_s=0.2)
state = lock.read_state()
print(json.dumps({"locked": lock.is_locked(), "holder": lock.holder(),
                  "models": {pid: sorted(p["models"]) for pid, p in state["processes"].items()},
                  "aliases": {pid: p["aliases"] for pid, p in state["processes"].items()}}))
"""


def probe(data_dir: Path) -> dict:
    out = subprocess.run([sys.executable, "-c", LOCK_PROBE, str(ROOT), str(data_dir)], capture_output=True,
                         text=True, timeout=60, check=True)
    return json.loads(out.stdout)


def test_second_process_sees_swap(make_suite, three_models: Path, tmp_path: Path) -> None:
    data_dir = tmp_path / "shared"
    suite = make_suite(data_dir=data_dir, load_policy={"fast": "tiny-a"})
    suite.loader.load("fast")
    me = str(os.getpid())
    before = probe(data_dir)
    assert before["locked"] is False and before["models"] == {me: ["tiny-a"]}
    during: list[dict] = []
    suite.loader.swap("fast", "tiny-b", warmup=lambda worker: during.append(probe(data_dir)))
    assert during[0]["locked"] is True
    assert during[0]["holder"]["pid"] == os.getpid() and during[0]["holder"]["operation"] == "swap"
    assert during[0]["holder"]["to"] == "tiny-b"
    after = probe(data_dir)
    assert after["locked"] is False
    assert after["models"] == {me: ["tiny-b"]} and after["aliases"][me] == {"fast": "tiny-b"}
    suite.loader.unload_all()
    assert probe(data_dir)["models"] == {me: []}     # aliases stay published, no models


HOLDER = """
import sys, time
sys.path.insert(0, sys.argv[1])
from agents.model_manager_suite.devlock import DeviceLock
lock = DeviceLock(sys.argv[2], "cpu")
with lock.hold("load", model="elsewhere"):
    lock.publish({"elsewhere": {"reserved_mb": 200.0}}, {})
print("ready", flush=True)
sys.stdin.read()
"""


def test_other_process_reservations_count(make_suite, models_dir: Path, tmp_path: Path) -> None:
    data_dir = tmp_path / "shared"
    data_dir.mkdir()
    other = subprocess.Popen([sys.executable, "-c", HOLDER, str(ROOT), str(data_dir)], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True)
    try:
        assert other.stdout.readline().strip() == "ready"
        suite = make_suite(data_dir=data_dir, **TIGHT)
        with pytest.raises(BudgetExceeded):
            suite.loader.load("tiny-a")                       # 250 - 200 MB left, 100 needed
        assert suite.loader.status()["devices"]["cpu"]["other_processes_mb"] == 200.0
    finally:
        other.stdin.close()
        other.wait(30)
    suite.loader.load("tiny-a")                               # the other process is gone
    assert suite.loader.is_loaded("tiny-a")
