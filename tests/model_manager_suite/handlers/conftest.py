"""Fixtures for the GGUFModelManager / ModelManagerAgent handler tests.

In-process tests compose the real core (migrated SQLite store, registry, loader, inference engine) from the
parent conftest's ``make_suite`` and hand it to the handlers as ``ModelServices``; end-to-end tests start the
hub as a process (``tests/support/hubproc.py``).
"""
from __future__ import annotations

from concurrent.futures import Future
from pathlib import Path
from typing import Any, Callable

import pytest

from agents.model_manager_suite.services import ModelServices
from bus.handler import CallContext
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


@pytest.fixture
def make_services(make_suite: Callable, models_dir: Path, tmp_path: Path) -> Callable[..., ModelServices]:
    """ModelServices over a real core; budget 100 MB with 64 MB overhead: one tiny model at a time."""
    made: list[ModelServices] = []

    def make(mma: dict | None = None, extra_dirs: tuple[Path, ...] = (), **models: Any) -> ModelServices:
        overrides = {"ram_budget_mb": 100.0, "overhead_mb": 64.0,
                     "load_policy": {"fast": "tiny-a", "quality": "tiny-b"}, **models}
        suite = make_suite([models_dir, *extra_dirs], **overrides)
        services = ModelServices(settings={"models": suite.settings, "model_manager_agent": mma or {}},
                                 data_dir=tmp_path / "data", events=suite.events, store=suite.store,
                                 registry=suite.registry, loader=suite.loader)
        services.suite = suite
        made.append(services)
        return services

    yield make
    for services in made:
        services.close()


def ctx(agent: str, action: str, stream: Callable | None = None, deadline: float | None = None) -> CallContext:
    return CallContext(agent=agent, action=action, stream=stream, deadline=deadline)


def call(handler: Any, action: str, args: dict | None = None, stream: Callable | None = None) -> Any:
    """A native call as the bus makes it: schema validation, then the method (and, when it returns a
    future, its outcome once it completes)."""
    spec, fn = handler.action_table()[action]
    result = fn(spec.schema.validate(args or {}), ctx(handler.name, action, stream))
    return result.result(60) if isinstance(result, Future) else result
