"""Fixtures of the search tests: the real all-MiniLM-L6-v2 model (loaded once), real migrated SQLite files.

* ``embedder`` (session): one ``Embedder`` shared by every engine of the run.
* ``make_engine(store, **settings)``: a started ``SearchEngine`` on a ``SqlStore`` (snapshots under the
  test's tmp dir, no background thread unless asked); closed at teardown.
* ``sql_store`` comes from ``tests/memory_hub/conftest.py`` (fresh SQLite file, migrated by Alembic).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any
from collections.abc import Callable, Iterator

import pytest

from agents.memory_hub.search import Embedder, SearchEngine
from agents.memory_hub.search.settings import SearchSettings
from agents.memory_hub.stores.sql import SqlStore

os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="session")
def embedder() -> Iterator[Embedder]:
    model = Embedder(threads=2)
    model.start()
    yield model
    model.close()


@pytest.fixture
def make_engine(embedder: Embedder, tmp_path: Path) -> Iterator[Callable[..., SearchEngine]]:
    engines: list[SearchEngine] = []

    def build(store: SqlStore, **settings: Any) -> SearchEngine:
        settings.setdefault("maintenance_interval_s", 0)
        engine = SearchEngine(store, embedder, SearchSettings(**settings), data_dir=tmp_path / "data")
        engine.start()
        engines.append(engine)
        return engine

    yield build
    for engine in engines:
        engine.close()

