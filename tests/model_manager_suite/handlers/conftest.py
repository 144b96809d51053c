"""Fixtures for the GGUFModelManager / ModelManagerAgent handler tests.

In-process tests compose the hub as ``hub.py`` does (``compose``) over the real model layer from the parent
conftest's ``make_suite`` (migrated SQLite store, registry, loader, inference engine); end-to-end tests start
the hub as a process (``tests/support/hubproc.py``).
"""
from __future__ import annotations

from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from collections.abc import Callable, Iterator

import pytest

from agents.model_manager_suite.core import ModelCore
from agents.model_manager_suite.handlers.gguf_model_manager import GGUFModelManager
from agents.model_manager_suite.handlers.model_manager_agent import ModelManagerAgent, ModelManagerAgentSettings
from agents.model_manager_suite.hub import ModelManagerSuite, compose
from agents.model_manager_suite.settings import ModelManagerSuiteSettings
from bus.handler import CallContext
from bus.settings import from_mapping
from tests.support.tiny_gguf import write_corrupt_gguf, write_tiny_gguf

BIG = {"n_embd": 512, "n_layer": 6, "n_ff": 2048, "n_head": 8, "n_head_kv": 4}   # ~48 MB of weights


def write_models(directory: Path) -> Path:
    """tiny-a, tiny-b (loadable), big (over a 100 MB budget), broken (corrupt GGUF)."""
    write_tiny_gguf(directory / "tiny-a.gguf", seed=1, name="tiny a")
    write_tiny_gguf(directory / "tiny-b.gguf", seed=2, name="tiny b")
    write_tiny_gguf(directory / "big.gguf", seed=3, name="big", **BIG)
    write_corrupt_gguf(directory / "broken.gguf", seed=4)
    return directory


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Written once per session; tests that add files use a directory of their own."""
    return write_models(tmp_path_factory.mktemp("handler-models"))


@dataclass
class ComposedHub:
    """The hub's parts as ``hub.compose`` builds them, plus the test's model layer (events, loader)."""
    suite: Any                 # the parent conftest's Suite (events, topics())
    parts: ModelManagerSuite

    @property
    def loader(self) -> Any:
        return self.suite.loader

    @property
    def gguf(self) -> GGUFModelManager:
        return self.parts.gguf_model_manager

    @property
    def mma(self) -> ModelManagerAgent:
        return self.parts.model_manager_agent


@pytest.fixture
def make_hub(make_suite: Callable, models_dir: Path) -> Iterator[Callable[..., ComposedHub]]:
    """The composed hub over a real model layer; budget 100 MB with 64 MB overhead: one tiny model at a time."""
    def make(mma: dict | None = None, extra_dirs: tuple[Path, ...] = (), **models: Any) -> ComposedHub:
        overrides = {"ram_budget_mb": 100.0, "overhead_mb": 64.0,
                     "load_policy": {"fast": "tiny-a", "quality": "tiny-b"}, **models}
        suite = make_suite([models_dir, *extra_dirs], **overrides)
        settings = ModelManagerSuiteSettings(
            models=suite.settings,
            model_manager_agent=from_mapping(ModelManagerAgentSettings, mma, "model_manager_agent"))
        core = ModelCore(settings=suite.settings, store=suite.store, gpu=suite.budget.gpu, budget=suite.budget,
                         registry=suite.registry, loader=suite.loader, engine=suite.engine)
        return ComposedHub(suite, compose(settings, core, suite.events))

    yield make       # make_suite stops the loaders and registries


def ctx(agent: str, action: str, stream: Callable | None = None, deadline: float | None = None) -> CallContext:
    return CallContext(agent=agent, action=action, stream=stream, deadline=deadline)


def call(handler: Any, action: str, args: dict | None = None, stream: Callable | None = None) -> Any:
    """A native call as the bus makes it: schema validation, then the method (and, when it returns a
    future, its outcome once it completes)."""
    spec, fn = handler.action_table()[action]
    result = fn(spec.schema.validate(args or {}), ctx(handler.name, action, stream))
    return result.result(60) if isinstance(result, Future) else result
