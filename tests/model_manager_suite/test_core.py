"""The composed model layer: migrate, scan, serve, health, stop."""
from __future__ import annotations

from pathlib import Path

from agents.model_manager_suite.core import open_model_core
from agents.model_manager_suite.models_settings import ModelsSettings
from bus.events import NullPublisher


def test_open_start_generate_stop(tmp_path: Path, models_dir: Path) -> None:
    events = NullPublisher()
    settings = ModelsSettings(dirs=(str(models_dir),), n_ctx=128, n_threads=1)
    core = open_model_core(settings, None, tmp_path / "data", events)
    core.start()
    try:
        assert (tmp_path / "data" / "model_manager_suite.db").exists()
        assert [r.id for r in core.registry.list()] == ["tiny-a"]
        out = core.engine.complete("tiny-a", "hi", max_tokens=2)
        assert out["model_id"] == "tiny-a"
        checks = core.health_checks()
        assert all(ok for ok, _ in checks.values())
        assert checks["model_registry"][1]["models"] == 1
    finally:
        core.stop()
    assert [t for t, _ in events.events] == ["model.loaded", "model.unloaded"]
