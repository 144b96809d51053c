"""open_stores: the hub's way to get a migrated SQL store and a Redis store (embedded by default)."""
from __future__ import annotations

from pathlib import Path

import pytest

from agents.memory_hub.stores import embedded_redis
from agents.memory_hub.stores.embedded_redis import EmbeddedRedisError
from agents.memory_hub.stores.embedded_redis import EmbeddedRedisSettings
from agents.memory_hub.stores.factory import open_stores
from agents.memory_hub.stores.sql_models import User
from migrations import runner


def test_embedded_by_default_and_closed_with_the_stores(tmp_path: Path) -> None:
    stores = open_stores(tmp_path)
    try:
        assert stores.embedded is not None
        pid = stores.embedded.pid
        assert stores.redis.url == stores.embedded.url
        assert stores.redis.available()
        assert runner.current_revision(stores.sql.url, "memory_hub") == runner.head_revision("memory_hub")
        with stores.sql.transaction() as s:
            s.add(User(user_id="ana", password_hash="h"))
        stores.redis.auth.set("probe", "1")
        checks = stores.health_checks()
        assert checks["sql"][0] and checks["redis"][0]
        assert (tmp_path / "memory_hub.db").exists()
    finally:
        stores.close()
    assert not embedded_redis._alive(pid)


def test_configured_urls_are_used_as_given(tmp_path: Path, redis_url: str) -> None:
    db_url = f"sqlite:///{tmp_path / 'custom.db'}"
    stores = open_stores(tmp_path / "data", database_url=db_url, redis_url=redis_url)
    try:
        assert stores.embedded is None
        assert stores.redis.url == redis_url and stores.sql.url == db_url
        assert not (tmp_path / "data" / "redis.sock").exists()
    finally:
        stores.close()


def test_failed_redis_start_leaves_nothing_running(tmp_path: Path) -> None:
    embedded = EmbeddedRedisSettings(executable=str(tmp_path / "no-such-redis-server"))
    with pytest.raises(EmbeddedRedisError, match="cannot run"):
        open_stores(tmp_path, embedded_redis=embedded)
    assert not (tmp_path / "redis.sock").exists()
