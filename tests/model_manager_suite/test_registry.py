"""Model registry: scanning, validity, sha256 cache, change detection, SQL rows, legacy config import."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from sqlalchemy import select

from agents.model_manager_suite.models_settings import ModelsSettings
from bus.settings import from_mapping
from agents.model_manager_suite.registry import ModelRegistry
from agents.model_manager_suite.sql_models import ModelRow
from agents.model_manager_suite.store import ModelStore
from bus.errors import NotFound
from tests.support.tiny_gguf import write_corrupt_gguf, write_not_gguf, write_tiny_gguf


def registry(store: ModelStore, dirs: list[Path], **overrides) -> ModelRegistry:
    return ModelRegistry(store, from_mapping(ModelsSettings, {"dirs": [str(d) for d in dirs], **overrides}))


def test_scan_lists_valid_and_invalid(tmp_path: Path, store: ModelStore) -> None:
    models = tmp_path / "models"
    write_tiny_gguf(models / "Good Model!.gguf", seed=1)
    write_tiny_gguf(models / "nested" / "deep.gguf", seed=2)
    write_corrupt_gguf(models / "broken.gguf")
    write_not_gguf(models / "notes.gguf")
    (models / "readme.txt").write_text("not scanned")
    reg = registry(store, [models])
    result = reg.rescan()
    assert sorted(result.added) == ["Good-Model", "broken", "deep", "notes"]
    assert result.invalid == ["broken", "notes"]
    good = reg.get("Good-Model")
    assert good.valid and good.architecture == "llama" and good.quantization == "F16"
    assert good.version == good.sha256[:12] and good.size == (models / "Good Model!.gguf").stat().st_size
    assert "truncated" in reg.get("broken").reason
    assert "not a GGUF file" in reg.get("notes").reason
    assert [r.id for r in reg.list(include_invalid=False)] == ["Good-Model", "deep"]
    with pytest.raises(NotFound):
        reg.get("nope")


def test_rows_persist_in_sql(tmp_path: Path, store: ModelStore) -> None:
    models = tmp_path / "models"
    write_tiny_gguf(models / "a.gguf", seed=1)
    write_not_gguf(models / "b.gguf")
    reg = registry(store, [models])
    reg.rescan()
    with store.engine.connect() as conn:
        rows = {r.id: r for r in conn.execute(select(ModelRow))}
    assert rows["a"].valid and rows["a"].architecture == "llama" and rows["a"].header["vocab_size"] == 320
    assert not rows["b"].valid and "not a GGUF" in rows["b"].invalid_reason
    (models / "b.gguf").unlink()
    reg.rescan()
    assert {r["id"]: r["present"] for r in store.load_models()} == {"a": True, "b": False}


def test_sha_cache_survives_rescan_and_restart(tmp_path: Path, store: ModelStore) -> None:
    models = tmp_path / "models"
    write_tiny_gguf(models / "a.gguf", seed=1)
    write_tiny_gguf(models / "b.gguf", seed=2)
    first = registry(store, [models]).rescan()
    assert first.hashed == 2
    reg = registry(store, [models])          # a new process: the cache is in SQL
    assert reg.rescan().hashed == 0
    assert reg.rescan().hashed == 0
    os.utime(models / "a.gguf", ns=(1, 1))   # same bytes, new mtime: rehash that one only
    assert reg.rescan().hashed == 1


def test_poll_detects_added_changed_removed(tmp_path: Path, store: ModelStore) -> None:
    models = tmp_path / "models"
    write_tiny_gguf(models / "a.gguf", seed=1)
    reg = registry(store, [models])
    seen = []
    reg.add_listener(seen.append)
    reg.rescan()
    old_version = reg.get("a").version
    assert reg.poll() is None                       # nothing changed: no rescan
    write_tiny_gguf(models / "b.gguf", seed=2)
    assert reg.poll().added == ["b"]
    write_tiny_gguf(models / "a.gguf", seed=3)      # replaced file: same id, new version
    result = reg.poll()
    assert result.changed == ["a"] and reg.get("a").version != old_version
    (models / "b.gguf").unlink()
    assert reg.poll().removed == ["b"]
    assert [len(r.added) + len(r.changed) + len(r.removed) for r in seen] == [1, 1, 1, 1]


def test_id_clash_and_stable_ids(tmp_path: Path, store: ModelStore) -> None:
    one, two = tmp_path / "one", tmp_path / "two"
    write_tiny_gguf(one / "same.gguf", seed=1)
    write_tiny_gguf(two / "same.gguf", seed=2)
    reg = registry(store, [one, two])
    reg.rescan()
    ids = [r.id for r in reg.list()]
    assert ids[0] == "same" and ids[1].startswith("same-") and len(ids) == 2
    by_path = {r.path: r.id for r in reg.list()}
    reg2 = registry(store, [two, one])     # order of dirs changed: ids stay with their files
    reg2.rescan()
    assert {r.path: r.id for r in reg2.list()} == by_path


def test_legacy_model_configs_and_load_policy(tmp_path: Path, store: ModelStore) -> None:
    models = tmp_path / "models"
    write_tiny_gguf(models / "phi" / "phi-file.gguf", seed=1)
    write_tiny_gguf(models / "other.gguf", seed=2)
    configs = {
        "phi-3-mini": {"serving_method": "gguf_direct", "enabled": True, "display_name": "Phi 3 mini",
                       "model_path": "phi/phi-file.gguf", "n_ctx": 128, "n_gpu_layers": -1, "n_threads": 3,
                       "estimated_vram_mb": 2500, "capabilities": ["chat", "code"], "idle_timeout_seconds": 60},
        "disabled": {"serving_method": "gguf_direct", "enabled": False, "model_path": "other.gguf"},
        "hf-model": {"serving_method": "huggingface", "model_path": "x"},
        "ghost": {"serving_method": "gguf_direct", "model_path": "missing.gguf"},
    }
    policy = {"fast": "phi-3-mini", "quality": {"model_id": "other"}}
    reg = registry(store, [models], model_configs=configs, load_policy=policy)
    reg.rescan()
    ids = sorted(r.id for r in reg.list())
    assert ids == ["ghost", "other", "phi-3-mini"]      # the configured file is not listed twice
    phi = reg.get("phi-3-mini")
    assert phi.valid and phi.source == "config" and phi.display_name == "Phi 3 mini"
    assert phi.config["n_ctx"] == 128 and phi.config["capabilities"] == ["chat", "code"]
    assert phi.config["idle_timeout_seconds"] == 60 and phi.config["estimated_vram_mb"] == 2500
    assert not reg.get("ghost").valid and "file not found" in reg.get("ghost").reason
    assert reg.resolve("fast").id == "phi-3-mini"
    assert reg.resolve("quality").id == "other"
    assert reg.resolve("Phi 3 mini").id == "phi-3-mini"
    list_form = [dict(configs["phi-3-mini"], model_id="phi-3-mini")]
    reg_list = registry(store, [models], model_configs=list_form)
    reg_list.rescan()
    assert reg_list.get("phi-3-mini").valid


def test_pinned_and_priority_persist(tmp_path: Path, store: ModelStore) -> None:
    models = tmp_path / "models"
    write_tiny_gguf(models / "a.gguf", seed=1)
    write_tiny_gguf(models / "b.gguf", seed=2)
    reg = registry(store, [models], pinned=["b"])
    reg.rescan()
    assert reg.get("b").pinned and not reg.get("a").pinned
    reg.set_pinned("a", True)
    reg.set_priority("a", 5)
    again = registry(store, [models])
    again.rescan()
    assert again.get("a").pinned and again.get("a").priority == 5


def test_missing_dir_is_empty_not_an_error(tmp_path: Path, store: ModelStore) -> None:
    reg = registry(store, [tmp_path / "does-not-exist"])
    assert reg.rescan().added == [] and reg.list() == []


def test_poll_thread_picks_up_new_file(tmp_path: Path, store: ModelStore) -> None:
    import threading

    models = tmp_path / "models"
    models.mkdir()
    reg = registry(store, [models], rescan_interval_s=0.05)
    reg.rescan()
    got = threading.Event()
    reg.add_listener(lambda result: got.set() if "new" in result.added else None)
    reg.start()
    try:
        shutil.copy(write_tiny_gguf(tmp_path / "staging" / "new.gguf"), models / "new.part")
        os.replace(models / "new.part", models / "new.gguf")   # atomic arrival, as an operator copies
        assert got.wait(10)
        assert reg.get("new").valid
    finally:
        reg.stop()


def test_symlinks_pointing_outside_the_models_dir_are_not_followed(tmp_path: Path, store: ModelStore) -> None:
    """Issue 18 point 8: passwd.gguf -> /etc/passwd leaked the file's first bytes through the header reader."""
    models = tmp_path / "models"
    write_tiny_gguf(models / "real.gguf", seed=1)
    outside = tmp_path / "outside"
    write_tiny_gguf(outside / "stray.gguf", seed=2)
    (models / "passwd.gguf").symlink_to("/etc/passwd")
    (models / "linked-dir").symlink_to(outside, target_is_directory=True)
    (models / "alias.gguf").symlink_to(models / "real.gguf")          # inside: still a model
    reg = registry(store, [models])
    result = reg.rescan()
    assert sorted(result.added) == ["alias", "real"]
    assert all("passwd" not in r.path and "stray" not in r.path for r in reg.list(include_invalid=True))
