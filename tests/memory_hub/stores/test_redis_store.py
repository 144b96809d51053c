"""RedisStore on a real redis-server: per-db round trips with prefixes, outage -> Unavailable, reconnect."""
from __future__ import annotations

import time

import pytest
import redis

from agents.memory_hub.stores.redis_store import (LOGICAL_DBS, NAMESPACES, RedisStore, RedisUnavailable,
                                                  normalize_url, redis_errors)
from bus.errors import Unavailable


def _raw(url: str, db: int) -> redis.Redis:
    return redis.Redis.from_url(url, db=db)


@pytest.mark.parametrize("namespace", sorted(NAMESPACES))
def test_round_trip_lands_in_its_db_under_its_prefix(redis_store: RedisStore, redis_url: str,
                                                     namespace: str) -> None:
    ns = redis_store.ns(namespace)
    assert ns.set("user:42", b"\x00\xffbytes") is True
    assert ns.get("user:42") == b"\x00\xffbytes"
    expected_db = LOGICAL_DBS[NAMESPACES[namespace]]
    for db in LOGICAL_DBS.values():
        keys = _raw(redis_url, db).keys("*")
        assert keys == ([f"{namespace}:user:42".encode()] if db == expected_db else [])
    assert ns.delete("user:42") == 1
    assert ns.get("user:42") is None


def test_namespace_attributes_and_key_helper(redis_store: RedisStore) -> None:
    assert redis_store.cache.prefix == "cache:" and redis_store.mem.prefix == "mem:"
    assert redis_store.session.prefix == "session:" and redis_store.kb.prefix == "kb:"
    assert redis_store.auth.prefix == "auth:" and redis_store.trust.prefix == "trust:"
    assert redis_store.key("kb", "doc-1") == "kb:doc-1"
    assert redis_store.client("auth") is redis_store.client(3)


def test_same_key_in_two_namespaces_of_one_db_stays_apart(redis_store: RedisStore) -> None:
    redis_store.cache.set("x", "from cache")
    redis_store.mem.set("x", "from mem")
    assert redis_store.cache.get("x") == b"from cache"
    assert redis_store.mem.get("x") == b"from mem"


def test_json_ttl_and_nx(redis_store: RedisStore) -> None:
    kb = redis_store.kb
    assert kb.set_json("doc", {"title": "t", "n": [1, 2]}, ttl=60)
    assert kb.get_json("doc") == {"title": "t", "n": [1, 2]}
    assert 0 < kb.ttl("doc") <= 60
    assert kb.set_json("doc", {"other": True}, nx=True) is False
    assert kb.get_json("missing", default="d") == "d"
    kb.set("plain", "not json")
    assert kb.get_json("plain") == "not json"
    assert kb.ttl("plain") is None
    assert kb.expire("plain", 0.05)
    deadline = time.monotonic() + 5
    while kb.exists("plain") and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not kb.exists("plain")


def test_incr_hashes_sets_and_many(redis_store: RedisStore) -> None:
    trust = redis_store.trust
    assert trust.incr("hits", ttl=30) == 1
    assert trust.incr("hits", 4) == 5
    assert trust.ttl("hits") is not None
    assert trust.hset("model:a", {"score": "0.7", "total": 3}) == 2
    assert trust.hgetall("model:a") == {"score": b"0.7", "total": b"3"}
    assert trust.hdel("model:a", "total") == 1
    auth = redis_store.auth
    assert auth.sadd("revoked", "jti-1", "jti-2") == 2
    assert auth.smembers("revoked") == {b"jti-1", b"jti-2"}
    assert auth.srem("revoked", "jti-1") == 1
    auth.set("a", "1")
    assert auth.get_many(["a", "b"]) == [b"1", None]
    assert auth.get_many([]) == [] and auth.delete() == 0


def test_scan_and_delete_matching_stay_inside_the_namespace(redis_store: RedisStore) -> None:
    cache, mem = redis_store.cache, redis_store.mem
    for i in range(1200):
        cache.set(f"nlu_results:{i}", "v")
    cache.set("model_decisions:1", "v")
    mem.set("nlu_results:1", "keep")
    assert len(cache.scan("nlu_results:*")) == 1200
    assert cache.delete_matching("nlu_results:*") == 1200
    assert cache.scan("*") == ["model_decisions:1"]
    assert mem.get("nlu_results:1") == b"keep"


def test_pipeline_uses_prefixed_keys(redis_store: RedisStore) -> None:
    session = redis_store.session
    with redis_errors():
        pipe = session.pipeline()
        pipe.set(session.key("a"), "1").set(session.key("b"), "2")
        pipe.execute()
    assert session.get_many(["a", "b"]) == [b"1", b"2"]


def test_bare_socket_path_is_accepted(redis_url: str) -> None:
    path = redis_url[len("unix://"):]
    assert normalize_url(path) == redis_url
    store = RedisStore(path)
    try:
        assert store.available()
    finally:
        store.close()


def test_down_redis_raises_unavailable_then_recovers_without_new_store(redis_controller) -> None:
    store = RedisStore(redis_controller.url)
    try:
        store.cache.set("k", "before")
        assert store.available()
        redis_controller.kill()
        assert store.available() is False
        with pytest.raises(RedisUnavailable) as excinfo:
            store.cache.get("k")
        err = excinfo.value
        assert isinstance(err, Unavailable)
        assert err.to_wire() == {"code": "unavailable", "message": "Redis is not available", "retryable": True}
        with pytest.raises(RedisUnavailable):
            store.session.set("s", "x")
        with pytest.raises(RedisUnavailable):
            store.info()
        redis_controller.restart()
        assert store.available()
        store.cache.set("k", "after")
        assert store.cache.get("k") == b"after"
        assert store.info()["clients_connected"] >= 1
    finally:
        store.close()


def test_unreachable_tcp_redis_is_unavailable_not_a_hang() -> None:
    store = RedisStore("redis://127.0.0.1:1")           # nothing listens on port 1
    try:
        assert store.available() is False
        assert store.health() == (False, {"connected": False, "url": "redis://127.0.0.1:1"})
        with pytest.raises(RedisUnavailable):
            store.kb.get("x")
    finally:
        store.close()
