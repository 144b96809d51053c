"""Shared MemoryHub fixtures: a real redis-server and real migrated databases, SQLite and PostgreSQL.

* ``redis_server`` (session): URL of one private redis-server for the whole run (never killed).
* ``redis_url``: the same URL with databases 0-3 flushed first.
* ``redis_store``: a ``RedisStore`` on ``redis_url``.
* ``redis_controller``: a private server per test that the test may ``kill()`` / ``restart()`` (faults).
* ``sql_url``: a fresh database migrated to head, once per backend (``SQL_BACKENDS``): an SQLite file, then a
  PostgreSQL database of the session's private cluster (``postgres`` in ``tests/conftest.py``). Every test that
  uses it (or ``sql_store``) runs on both: one behaviour suite, two databases.
* ``module_sql_url``: the same, shared by a module (search corpora embedded once per backend).
* ``sql_store``: a ``SqlStore`` on ``sql_url``; ``sqlite_store``: on a fresh SQLite file only (SQLite specifics).
* ``compose_hub(sql, redis=None, search=None, tokens=None, **sections)``: the hub's domain services and its 12
  handlers, composed by ``hub.compose`` exactly as the daemon does (sections are raw mappings, checked as the
  daemon checks them); ``.handler(Class)`` picks one; everything is closed after the test.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any
from collections.abc import Callable, Iterator

import pytest
import redis

from agents.memory_hub.hub import MemoryHubParts, compose
from agents.memory_hub.settings import MemoryHubSettings
from agents.memory_hub.stores.embedded_redis import EmbeddedRedis
from agents.memory_hub.stores.redis_store import LOGICAL_DBS, RedisStore
from agents.memory_hub.stores.sql import SqlStore, default_database_url
from bus.events import NullPublisher
from bus.settings import from_mapping
from migrations.runner import upgrade_to_head

SQL_BACKENDS = ("sqlite", "postgresql")


class RedisController:
    """A private redis-server a fault test can crash and bring back on the same socket."""

    def __init__(self, data_dir: Path) -> None:
        self.server = EmbeddedRedis(data_dir)

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def pid(self) -> int | None:
        return self.server.pid

    def start(self) -> str:
        return self.server.start()

    def kill(self) -> None:
        """SIGKILL: Redis disappears without a goodbye (the socket file stays behind)."""
        self.server.kill()

    def restart(self) -> str:
        """Start again on the same socket and data dir (AOF reloaded); returns the URL."""
        self.server.kill()
        return self.server.start()

    def stop(self) -> None:
        self.server.stop()


def flush_logical_dbs(url: str) -> None:
    for db in LOGICAL_DBS.values():
        client = redis.Redis.from_url(url, db=db)
        try:
            client.flushdb()
        finally:
            client.close()


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    server = EmbeddedRedis(tmp_path_factory.mktemp("redis-shared"))
    url = server.start()
    try:
        yield url
    finally:
        server.stop()


@pytest.fixture
def redis_url(redis_server: str) -> str:
    flush_logical_dbs(redis_server)
    return redis_server


@pytest.fixture
def redis_store(redis_url: str) -> Iterator[RedisStore]:
    store = RedisStore(redis_url)
    try:
        yield store
    finally:
        store.close()


@pytest.fixture
def redis_controller(tmp_path: Path) -> Iterator[RedisController]:
    controller = RedisController(tmp_path / "redis-private")
    controller.start()
    try:
        yield controller
    finally:
        controller.stop()


def _migrated_database(backend: str, request: pytest.FixtureRequest, directory: Path) -> Iterator[str]:
    if backend == "sqlite":
        url = default_database_url(directory)
        upgrade_to_head(url, "memory_hub")
        yield url
        return
    databases = request.getfixturevalue("postgres")
    name, url = databases.fresh()
    try:
        yield url
    finally:
        databases.drop(name)


@pytest.fixture(params=SQL_BACKENDS)
def sql_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    yield from _migrated_database(request.param, request, tmp_path / "sql")


@pytest.fixture(scope="module", params=SQL_BACKENDS)
def module_sql_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    yield from _migrated_database(request.param, request, tmp_path_factory.mktemp("sql"))


@pytest.fixture
def sql_store(sql_url: str) -> Iterator[SqlStore]:
    store = SqlStore(sql_url)
    try:
        yield store
    finally:
        store.close()


@pytest.fixture
def sqlite_store(tmp_path: Path) -> Iterator[SqlStore]:
    store = SqlStore(data_dir=tmp_path / "sql")
    store.migrate()
    try:
        yield store
    finally:
        store.close()


@pytest.fixture
def compose_hub(tmp_path: Path) -> Iterator[Callable[..., MemoryHubParts]]:
    made: list[MemoryHubParts] = []

    def make(sql: Any, redis: Any = None, *, search: Any = None, tokens: Any = None, events: Any = None,
             **sections: Any) -> MemoryHubParts:
        parts = compose(from_mapping(MemoryHubSettings, sections), sql=sql, redis=redis,
                        events=events if events is not None else NullPublisher(), data_dir=tmp_path,
                        search=search, tokens=tokens)
        made.append(parts)
        return parts

    yield make
    for parts in reversed(made):
        parts.close()
