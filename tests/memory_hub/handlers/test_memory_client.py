"""MemoryClient against a real migrated SQLite and a real redis-server (no hub process): the key/value store
(SQL ``kv_entries`` + versioned Redis db0 copy, ttl, prefix listing, limits, Redis down), and the legacy port
(health forms, circuit breaker, the MemoryOrchestratorService requests served directly).
"""
from __future__ import annotations

import threading
import time

import pytest
from sqlalchemy import update

from agents.memory_hub.handlers.memory_client import CircuitBreaker, MemoryClient
from agents.memory_hub.stores.redis_store import RedisStore
from agents.memory_hub.stores.sql_models import KVEntry
from bus.errors import BadRequest, NotFound, TooLarge
from bus.handler import CallContext
from tests.support.loop import one_pass, settle
from schemas.memory_hub import memory_client as schema


@pytest.fixture
def make(compose_hub):
    def make(sql_store, redis_store=None, **sections) -> MemoryClient:
        return compose_hub(sql_store, redis_store, **sections).handler(MemoryClient)
    return make


@pytest.fixture
def mc(make, sql_store, redis_store) -> MemoryClient:
    return make(sql_store, redis_store)


def native(mc, action: str, **args):
    spec, fn = mc.action_table()[action]
    return settle(fn(spec.schema.validate(args), CallContext(agent=mc.name, action=action)), mc.watched())


def legacy(mc, request) -> dict:
    return mc.handle_legacy(request, 5713)


# ------------------------------------------------------------------------------------------- key/value

@pytest.mark.parametrize("value", ["text", 42, 1.5, True, [1, "two", None], {"nested": {"list": [1, 2]}}, b"\x00\xff"])
def test_values_round_trip(mc, value):
    assert native(mc, "kv_set", key="k", value=value) == {"key": "k", "expires_at": None, "created": True}
    assert native(mc, "kv_get", key="k") == {"key": "k", "value": value, "expires_at": None}


def test_reads_are_served_from_a_current_redis_copy_and_writes_invalidate_it(make, mc, redis_store, sql_store,
                                                                            tmp_path):
    native(mc, "kv_set", key="user:42", value={"name": "Ana"})
    assert native(mc, "kv_get", key="user:42")["value"] == {"name": "Ana"}      # a miss: SQL, then copied
    hits = mc.kv.cache.hits
    assert native(mc, "kv_get", key="user:42")["value"] == {"name": "Ana"}
    assert mc.kv.cache.hits == hits + 1                                        # served from Redis
    assert native(mc, "kv_set", key="user:42", value={"name": "Bo"})["created"] is False
    assert native(mc, "kv_get", key="user:42")["value"] == {"name": "Bo"}
    other_hub = make(sql_store, redis_store)                # same SQL and Redis
    native(other_hub, "kv_set", key="user:42", value={"name": "Cy"})
    assert native(mc, "kv_get", key="user:42")["value"] == {"name": "Cy"}
    assert native(mc, "kv_delete", key="user:42") == {"key": "user:42", "deleted": True}
    with pytest.raises(NotFound):
        native(mc, "kv_get", key="user:42")
    with pytest.raises(NotFound):
        native(mc, "kv_delete", key="user:42")


def kv_reader_tracking(mc) -> None:
    """Drive the kv reader as the router loop does until its connection tracks (the first gets on this
    thread start connecting and take the blocking path)."""
    until = time.monotonic() + 10
    while not mc.kv.cache.near.tracking and time.monotonic() < until:
        with pytest.raises(NotFound):
            native(mc, "kv_get", key="never-set")
        time.sleep(0.01)
    assert mc.kv.cache.near.tracking
    mc.kv.cache.near.lease_s = 60.0     # what is answered in process, not the lease (test_near_cache has it)


def test_a_repeated_read_is_answered_in_process_until_the_key_changes_anywhere(make, mc, redis_store, sql_store):
    kv_reader_tracking(mc)
    client = redis_store.client("cache")
    native(mc, "kv_set", key="user:7", value={"name": "Ana"})
    assert native(mc, "kv_get", key="user:7")["value"] == {"name": "Ana"}       # SQL, copied to Redis
    assert native(mc, "kv_get", key="user:7")["value"] == {"name": "Ana"}       # Redis copy, kept in process
    mgets, near_hits = client.info("commandstats")["cmdstat_mget"]["calls"], mc.kv.cache.near.hits
    future = mc.kv.get_async("user:7")
    assert future.done() and future.result(0)["value"] == {"name": "Ana"}        # answered at once
    assert mc.kv.cache.near.hits == near_hits + 1
    assert client.info("commandstats")["cmdstat_mget"]["calls"] == mgets

    native(mc, "kv_set", key="user:7", value={"name": "Bo"})                    # this hub writes: no pass needed
    assert native(mc, "kv_get", key="user:7")["value"] == {"name": "Bo"}
    assert native(mc, "kv_get", key="user:7")["value"] == {"name": "Bo"}
    assert mc.kv.get_async("user:7").done()

    other_hub = make(sql_store, redis_store)                                   # another replica writes
    native(other_hub, "kv_set", key="user:7", value={"name": "Cy"})
    one_pass(mc.kv.reader)                                                       # Redis's push is read
    future = mc.kv.get_async("user:7")
    assert not future.done()
    assert settle(future, mc.watched())["value"] == {"name": "Cy"}

    assert native(mc, "kv_get", key="user:7")["value"] == {"name": "Cy"}
    assert mc.kv.get_async("user:7").done()
    client.set("_gen:kv:", b"0123456789abcdef")                                # a generation bump elsewhere
    one_pass(mc.kv.reader)
    assert len(mc.kv.cache.near) == 0
    assert native(mc, "kv_get", key="user:7")["value"] == {"name": "Cy"}


def test_a_kept_copy_is_not_served_past_its_key_expiry_or_after_the_connection_drops(mc, redis_store):
    kv_reader_tracking(mc)
    native(mc, "kv_set", key="short", value=1, ttl=0.5)
    native(mc, "kv_set", key="long", value=2)
    for _ in range(2):
        assert native(mc, "kv_get", key="short")["value"] == 1 and native(mc, "kv_get", key="long")["value"] == 2
    assert mc.kv.get_async("short").done() and mc.kv.get_async("long").done()
    time.sleep(0.6)
    with pytest.raises(NotFound):
        native(mc, "kv_get", key="short")
    redis_store.client("cache").client_kill_filter(_type="normal", skipme=True)
    one_pass(mc.kv.reader)
    assert not mc.kv.cache.near.tracking and len(mc.kv.cache.near) == 0
    assert native(mc, "kv_get", key="long")["value"] == 2


def test_ttl_expires_keys(mc, sql_store, redis_store):
    result = native(mc, "kv_set", key="temp", value=1, ttl=30)
    assert result["expires_at"] is not None
    assert native(mc, "kv_get", key="temp")["value"] == 1
    assert 0 < redis_store.client("cache").pttl("kv:temp") <= 30000           # the copy never outlives the key
    with sql_store.transaction() as s:                  # let it expire without waiting
        s.execute(update(KVEntry).where(KVEntry.key == "temp").values(expires_at=1.0))
    mc.kv.cache.invalidate("temp")                      # as any writer does after its commit
    with pytest.raises(NotFound):
        native(mc, "kv_get", key="temp")
    assert native(mc, "kv_list", prefix="te")["keys"] == []
    assert native(mc, "kv_set", key="temp", value=2)["created"] is True        # the expired row was purged


def test_list_by_prefix(mc):
    for key in ("user:2", "user:1", "user:10", "userx", "other", "100%_a", "100%b"):
        native(mc, "kv_set", key=key, value=key)
    assert native(mc, "kv_list", prefix="user:") == {"prefix": "user:", "keys": ["user:1", "user:10", "user:2"],
                                                      "count": 3}
    assert native(mc, "kv_list", prefix="user", limit=2)["keys"] == ["user:1", "user:10"]
    assert native(mc, "kv_list", prefix="100%_")["keys"] == ["100%_a"]
    assert native(mc, "kv_list", prefix="USER")["keys"] == []
    assert native(mc, "kv_list", limit="3")["count"] == 3                      # an HTTP query string
    assert native(mc, "kv_list")["count"] == 7
    with pytest.raises(BadRequest):
        native(mc, "kv_list", limit="many")


def test_limits_and_bad_values(make, tmp_path, sql_store):
    mc = make(sql_store, memory_client={"max_value_bytes": 16})
    with pytest.raises(TooLarge) as err:
        native(mc, "kv_set", key="big", value="x" * 20)
    assert err.value.details == {"field": "value"}
    with pytest.raises(BadRequest) as err:
        native(mc, "kv_set", key="k")
    assert err.value.details == {"field": "value"}
    assert native(mc, "kv_set", key="k", body=[1, 2])["created"] is True       # route form: bare body
    with pytest.raises(BadRequest) as err:
        schema.KV_SET.validate({"key": "k", "value": 1, "ttl": 0})
    assert err.value.details == {"field": "ttl"}
    with pytest.raises(BadRequest) as err:
        schema.KV_GET.validate({"key": "k" * 513})
    assert err.value.details == {"field": "key"}


def test_reads_asked_for_during_one_loop_pass_share_one_mget(mc, redis_store):
    for key, ttl in (("a", None), ("b", None), ("old", 0.3)):
        native(mc, "kv_set", key=key, value=key.upper(), ttl=ttl)
    client = redis_store.client("cache")
    until = time.monotonic() + 10
    while mc.kv.reader.fileno() is None and time.monotonic() < until:   # this thread drives the reader now
        native(mc, "kv_get", key="a")
        time.sleep(0.01)
    native(mc, "kv_get", key="old")                          # copied to Redis ...
    client.persist("kv:old")                                 # ... and the copy outlives its key (a clock skew)
    time.sleep(0.35)
    mgets = client.info("commandstats")["cmdstat_mget"]["calls"]
    futures = [mc.kv.get_async(key) for key in ("a", "b", "missing", "a", "old")]
    outcomes = []
    for future in futures:
        try:
            outcomes.append(settle(future, mc.watched())["value"])
        except NotFound:
            outcomes.append(None)
    assert outcomes == ["A", "B", None, "A", None]           # hits, a miss read from SQL, missing, expired
    assert client.info("commandstats")["cmdstat_mget"]["calls"] == mgets + 1
    elsewhere: list = []                                     # another thread's read takes the blocking path
    reader = threading.Thread(target=lambda: elsewhere.append(mc.kv.get_async("a").result(10)["value"]))
    reader.start()
    reader.join()
    assert elsewhere == ["A"]


def test_kv_works_while_redis_is_down(make, tmp_path, sql_store, redis_controller):
    redis = RedisStore(redis_controller.url)
    mc = make(sql_store, redis)
    native(mc, "kv_set", key="a", value=1)
    redis_controller.kill()
    native(mc, "kv_set", key="a", value=2)
    native(mc, "kv_set", key="b", value=3)
    assert native(mc, "kv_get", key="a")["value"] == 2 and native(mc, "kv_get", key="b")["value"] == 3
    redis_controller.restart()
    mc.kv.cache._down_until = 0.0
    assert native(mc, "kv_get", key="a")["value"] == 2            # the old copy in Redis is never served
    redis.close()


# ------------------------------------------------------------------------------------------- legacy port

def test_health_forms(mc):
    for reply in (legacy(mc, {"action": "ping"}), legacy(mc, {"action": "health"}), mc.legacy_health(6713)):
        assert reply["status"] == "HEALTHY" and reply["service"] == "MemoryClient"
        assert isinstance(reply["uptime_seconds"], int) and reply["request_count"] >= 1
        assert {"ready", "initialized", "message", "timestamp", "uptime", "active_threads"} <= set(reply)
    assert legacy(mc, {"action": "health_check"}) == {
        "status": "success", "agent": "MemoryClient", "connected": True,
        "circuit_breaker": {"state": "CLOSED", "failure_count": 0, "last_failure_time": 0.0,
                            "failure_threshold": 3, "reset_timeout": 60.0}}


def test_memory_requests_are_served_directly(mc):
    added = legacy(mc, {"action": "add_memory", "data": {"content": "via 5713", "memory_type": "general",
                                                         "memory_tier": "short", "importance": 0.5,
                                                         "created_by": "GoalManager"}})
    assert added["status"] == "success"
    got = legacy(mc, {"action": "get_memory", "data": {"memory_id": added["memory_id"]}})
    assert got["memory"]["content"] == "via 5713" and got["memory"]["access_count"] == 1
    session = legacy(mc, {"action": "create_session", "data": {"user_id": "u1", "session_type": "conversation",
                                                               "created_by": "SessionMemoryAgent"}})
    assert session["status"] == "success" and session["session_id"].startswith("session-")
    assert legacy(mc, {"action": "get_memory", "data": {}}) == {"status": "error", "message": "memory_id is required."}


def test_unknown_requests(mc):
    assert legacy(mc, {"action": "kv_get", "key": "x"}) == \
        {"status": "error", "message": "This client does not accept remote commands"}
    assert legacy(mc, "not an object") == {"status": "error", "message": "Invalid request format"}


def test_circuit_breaker_opens_and_resets(mc):
    for _ in range(3):
        mc.breaker.record(False)
    reply = legacy(mc, {"action": "get_memory", "data": {"memory_id": "x"}})
    assert reply == {"status": "error", "message": "Circuit breaker is open due to previous failures. Try again later.",
                     "circuit_state": "OPEN"}
    assert legacy(mc, {"action": "health_check"})["circuit_breaker"]["state"] == "OPEN"
    assert legacy(mc, {"action": "reset_circuit_breaker"}) == \
        {"status": "success", "message": "Circuit breaker reset successfully", "new_state": "CLOSED"}
    assert legacy(mc, {"action": "get_memory", "data": {"memory_id": "x"}})["message"] == "Memory with ID x not found."


def test_breaker_half_opens_after_the_reset_timeout():
    breaker = CircuitBreaker(failure_threshold=2, reset_timeout=0.0)
    breaker.record(False)
    assert breaker.allow() and breaker.state == "CLOSED"
    breaker.record(False)
    assert breaker.state == "OPEN"
    assert breaker.allow() and breaker.state == "HALF_OPEN"
    breaker.record(False)
    assert breaker.state == "OPEN"
    breaker.allow()
    breaker.record(True)
    assert breaker.status()["state"] == "CLOSED" and breaker.failure_count == 0
