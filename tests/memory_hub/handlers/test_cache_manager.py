"""CacheManager against a real redis-server (no hub process): keys, TTLs, LRU bound, sweep, legacy replies,
native actions, and Redis going away and coming back under the same handler.
"""
from __future__ import annotations

import select
import time

import pytest

from agents.memory_hub.cache import CacheSettings, split_cache_key
from agents.memory_hub.handlers.cache_manager import CacheManager
from agents.memory_hub.stores.redis_store import RedisStore
from bus.errors import BadRequest, NotFound, TooLarge, Unavailable
from bus.config import ConfigError
from bus.handler import CallContext
from bus.settings import from_mapping, to_mapping
from tests.support.loop import one_pass, settle

LEGACY_TYPES = to_mapping(CacheSettings())["types"]
SMALL = {"types": {**LEGACY_TYPES, "nlu_results": {"ttl_s": 300, "max_entries": 3}}, "max_value_bytes": 1000}


def make_agent(tmp_path, redis_store, **section) -> CacheManager:
    return CacheManager(from_mapping(CacheSettings, section, "cache_manager"), redis_store)


@pytest.fixture
def agent(tmp_path, redis_store) -> CacheManager:
    return make_agent(tmp_path, redis_store, **SMALL)


def legacy(agent: CacheManager, request) -> dict:
    return agent.handle_legacy(request, 7102)


def ctx(action: str) -> CallContext:
    return CallContext(agent="CacheManager", action=action)


def native_get(agent: CacheManager, cache_type: str, key: str) -> dict:
    """The native `get` as the hub's loop runs it (inline, its future completed by the agent's reader)."""
    return settle(agent.get({"cache_type": cache_type, "key": key}, ctx("get")), agent.watched())


# ------------------------------------------------------------------------------------------- keys and TTLs

def test_legacy_keys_live_under_the_cache_prefix_as_json(agent, redis_store):
    legacy(agent, {"action": "put", "cache_type": "tool_responses", "key": "weather", "value": {"t": 21}})
    legacy(agent, {"action": "cache_memory", "memory_id": 42, "data": ["a", 1]})
    raw = redis_store.client("cache")
    assert raw.get("cache:tool_responses:weather") == b'{"t":21}'
    assert raw.get("cache:memory:42") == b'["a",1]'
    assert raw.get("tool_responses:weather") is None


@pytest.mark.parametrize("cache_type, ttl", [("nlu_results", 300), ("model_decisions", 600),
                                             ("context_summaries", 3600), ("tool_responses", 900),
                                             ("memory", 43200), ("anything_else", 3600)])
def test_put_uses_the_legacy_default_ttl_of_each_type(tmp_path, redis_store, cache_type, ttl):
    agent = make_agent(tmp_path, redis_store)
    assert legacy(agent, {"action": "put", "cache_type": cache_type, "key": "k", "value": 1}) == \
        {"status": "success", "message": "Cache entry stored"}
    left = redis_store.cache.ttl(f"{cache_type}:k")
    assert ttl - 5 < left <= ttl


def test_explicit_ttls_and_the_cache_memory_default(agent, redis_store):
    legacy(agent, {"action": "put", "cache_type": "nlu_results", "key": "k", "value": 1, "ttl": 20})
    assert 15 < redis_store.cache.ttl("nlu_results:k") <= 20
    legacy(agent, {"action": "cache_memory", "memory_id": "m1", "data": {"x": 1}})
    assert 3595 < redis_store.cache.ttl("memory:m1") <= 3600          # legacy code: 1 h, not the type's 12 h
    legacy(agent, {"action": "cache_memory", "memory_id": "m2", "data": {"x": 1}, "ttl": 60})
    assert 55 < redis_store.cache.ttl("memory:m2") <= 60


def test_memory_actions_and_typed_actions_share_the_memory_type(agent):
    legacy(agent, {"action": "cache_memory", "memory_id": 7, "data": {"v": 1}})
    assert legacy(agent, {"action": "get", "cache_type": "memory", "key": "7"}) == {"status": "success",
                                                                                  "data": {"v": 1}}
    assert legacy(agent, {"action": "get_cached_memory", "memory_id": "7"})["data"] == {"v": 1}


# ------------------------------------------------------------------------------------------- legacy replies

def test_every_legacy_action_and_reply(agent):
    assert legacy(agent, {"action": "get_cached_memory", "memory_id": "m"}) == \
        {"status": "error", "message": "Cache miss", "data": None}
    assert legacy(agent, {"action": "cache_memory", "memory_id": "m", "data": {"a": [1, 2]}}) == \
        {"status": "success", "message": "Memory cached successfully"}
    assert legacy(agent, {"action": "get_cached_memory", "memory_id": "m"}) == {"status": "success",
                                                                              "data": {"a": [1, 2]}}
    assert legacy(agent, {"action": "invalidate_memory_cache", "memory_id": "m"}) == \
        {"status": "success", "message": "Memory cache entry invalidated"}
    assert legacy(agent, {"action": "invalidate_memory_cache", "memory_id": "m"}) == \
        {"status": "success", "message": "Memory cache entry not found"}
    assert legacy(agent, {"action": "put", "cache_type": "t", "key": "k", "value": "v"})["status"] == "success"
    assert legacy(agent, {"action": "get", "cache_type": "t", "key": "k"}) == {"status": "success", "data": "v"}
    assert legacy(agent, {"action": "invalidate", "cache_type": "t", "key": "k"}) == \
        {"status": "success", "message": "Cache entry invalidated"}
    assert legacy(agent, {"action": "invalidate", "cache_type": "t", "key": "k"}) == \
        {"status": "success", "message": "Cache entry not found"}
    assert legacy(agent, {"action": "get", "cache_type": "t", "key": "k"}) == \
        {"status": "error", "message": "Cache miss", "data": None}
    assert legacy(agent, {"action": "nope"}) == {"status": "error", "message": "Unknown action: nope"}


def test_flush_counts_only_entries_of_that_type(agent):
    for i in range(3):
        legacy(agent, {"action": "put", "cache_type": "a", "key": f"k{i}", "value": i})
    legacy(agent, {"action": "put", "cache_type": "ab", "key": "k", "value": 1})
    legacy(agent, {"action": "put", "cache_type": "b", "key": "a:k", "value": 1})
    assert legacy(agent, {"action": "flush", "cache_type": "a"}) == {"status": "success",
                                                                     "message": "Flushed 3 cache entries"}
    assert legacy(agent, {"action": "get", "cache_type": "ab", "key": "k"})["status"] == "success"
    assert legacy(agent, {"action": "get", "cache_type": "b", "key": "a:k"})["status"] == "success"
    assert legacy(agent, {"action": "flush", "cache_type": "a"})["message"] == "Flushed 0 cache entries"


def test_flush_escapes_glob_characters(agent):
    legacy(agent, {"action": "put", "cache_type": "x", "key": "1", "value": 1})
    assert legacy(agent, {"action": "flush", "cache_type": "*"})["message"] == "Flushed 0 cache entries"
    assert legacy(agent, {"action": "get", "cache_type": "x", "key": "1"})["status"] == "success"


@pytest.mark.parametrize("request_, message", [
    ({"action": "get_cached_memory"}, "Missing memory_id parameter"),
    ({"action": "get_cached_memory", "memory_id": ""}, "Missing memory_id parameter"),
    ({"action": "cache_memory", "memory_id": "m"}, "Missing required parameters"),
    ({"action": "cache_memory", "data": {}}, "Missing required parameters"),
    ({"action": "invalidate_memory_cache"}, "Missing memory_id parameter"),
    ({"action": "get", "cache_type": "t"}, "Missing cache_type or key parameter"),
    ({"action": "get", "key": "k"}, "Missing cache_type or key parameter"),
    ({"action": "put", "cache_type": "t", "key": "k"}, "Missing required parameters"),
    ({"action": "invalidate", "key": "k"}, "Missing cache_type or key parameter"),
    ({"action": "flush"}, "Missing cache_type parameter"),
    ({"action": "get_cached_memory", "memory_id": {"a": 1}}, "Invalid memory_id parameter"),
    ({"action": "get", "cache_type": 5, "key": "k"}, "Invalid cache_type parameter"),
    ({"action": "get", "cache_type": "t", "key": ["k"]}, "Invalid key parameter"),
    ({"action": "put", "cache_type": "t", "key": "k", "value": 1, "ttl": "soon"}, "Invalid ttl parameter"),
    ({"action": "put", "cache_type": "t", "key": "k", "value": 1, "ttl": -3}, "Invalid ttl parameter"),
    ({"action": "cache_memory", "memory_id": "m", "data": 1, "ttl": 0}, "Invalid ttl parameter"),
    ({"action": "put", "cache_type": "t", "key": "k" * 600, "value": 1}, "Invalid key parameter"),
    ({"action": "put", "cache_type": "t", "key": "k", "value": "x" * 2000}, "value larger than 1000 bytes"),
    ({"action": "put", "cache_type": "_lru", "key": "k", "value": 1}, "cache_type '_lru' is reserved"),
])
def test_bad_legacy_input_gets_the_legacy_error_reply(agent, request_, message):
    assert legacy(agent, request_) == {"status": "error", "message": message}


def test_non_object_request(agent):
    assert legacy(agent, ["get"]) == {"status": "error", "message": "Invalid request format"}


def test_health_reply_has_the_legacy_fields(agent):
    for reply in (agent.legacy_health(8102), legacy(agent, {"action": "health_check"}),
                  legacy(agent, {"action": "ping"})):
        assert reply["status"] == "ok" and reply["redis_available"] is True
        assert reply["name"] == "CacheManager" and reply["version"] == "1.0.0"
        assert reply["port"] == 7102 and reply["health_port"] == 8102
        assert set(reply["redis_info"]) == {"memory_used", "clients_connected", "uptime"}
        assert {"ready", "initialized", "message", "timestamp", "uptime", "active_threads",
                "error_reporting"} <= set(reply)


# ------------------------------------------------------------------------------------------- eviction

def test_each_type_is_bounded_and_evicts_the_least_recently_used(agent, redis_store):
    for key in ("a", "b", "c"):
        legacy(agent, {"action": "put", "cache_type": "nlu_results", "key": key, "value": key})
    assert legacy(agent, {"action": "get", "cache_type": "nlu_results", "key": "a"})["data"] == "a"  # a is fresh now
    result = agent.put({"cache_type": "nlu_results", "key": "d", "value": "d", "ttl": None}, ctx("put"))
    assert result["evicted"] == 1
    present = {k for k in "abcd"
               if legacy(agent, {"action": "get", "cache_type": "nlu_results", "key": k})["status"] == "success"}
    assert present == {"a", "c", "d"}                                      # b was the least recently used
    assert agent.cache.count("nlu_results") == 3
    assert legacy(agent, {"action": "put", "cache_type": "other", "key": "x", "value": 1})["status"] == "success"
    assert agent.cache.count("nlu_results") == 3


def test_bound_holds_when_many_writers_race(agent):
    import threading

    def writer(n: int) -> None:
        for i in range(25):
            agent.put_entry("nlu_results", f"w{n}-{i}", i, None)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(agent.cache.ns.scan("nlu_results:*")) == 3
    assert agent.cache.count("nlu_results") == 3


def test_sweep_drops_lru_members_of_expired_or_deleted_entries(agent, redis_store):
    agent.put_entry("nlu_results", "gone", 1, None)
    agent.put_entry("nlu_results", "kept", 1, None)
    redis_store.cache.delete("nlu_results:gone")               # e.g. expired by TTL
    assert agent.cache.count("nlu_results") == 2
    assert agent.cache.sweep() == 1
    assert agent.cache.count("nlu_results") == 1
    assert agent.cache.stats()["nlu_results"] == {"entries": 1, "ttl_s": 300, "max_entries": 3}


def test_unbounded_type_when_max_entries_is_zero(tmp_path, redis_store):
    agent = make_agent(tmp_path, redis_store, extra_types={"logs": {"ttl_s": 60, "max_entries": 0}})
    for i in range(20):
        agent.put_entry("logs", str(i), i, None)
    assert len(agent.cache.ns.scan("logs:*")) == 20


# ------------------------------------------------------------------------------------------- native

def test_native_actions(agent):
    put = agent.put({"cache_type": "tool_responses", "key": "k", "value": {"a": 1}, "ttl": None}, ctx("put"))
    assert put == {"cache_type": "tool_responses", "key": "k", "ttl": 900, "evicted": 0}
    got = native_get(agent, "tool_responses", "k")
    assert got["value"] == {"a": 1} and 895 < got["ttl"] <= 900
    assert agent.invalidate({"cache_type": "tool_responses", "key": "k"}, ctx("invalidate"))["deleted"] is True
    with pytest.raises(NotFound):
        native_get(agent, "tool_responses", "k")
    agent.put({"cache_type": "t", "key": "1", "value": 1, "ttl": 5.5}, ctx("put"))
    assert agent.flush({"cache_type": "t"}, ctx("flush")) == {"cache_type": "t", "flushed": 1}
    assert agent.stats({}, ctx("stats"))["types"]["nlu_results"]["max_entries"] == 3


def loop_ready(agent: CacheManager) -> None:
    """Tick the agent's watched source as the router loop does until its Redis connection is up (the first
    get on the loop's thread starts connecting and takes the blocking path), then run a pass of two gets (the
    first such pass loads the script of many gets, through the blocking path)."""
    source = agent.watched()[0]
    source.tick()
    with pytest.raises(NotFound):
        settle(agent.get({"cache_type": "nlu_results", "key": "never-stored"}, ctx("get")), [source])
    for _ in range(500):
        source.tick()
        if source.fileno() is not None:
            break
        time.sleep(0.01)
    else:
        raise AssertionError("the cache reader did not connect")
    for future in [agent.get({"cache_type": "nlu_results", "key": "never-stored"}, ctx("get")) for _ in range(2)]:
        with pytest.raises(NotFound):
            settle(future, [source])


def evalsha_calls(redis_store) -> int:
    return int(redis_store.client("cache").info("commandstats").get("cmdstat_evalsha", {}).get("calls", 0))


def test_the_gets_of_one_loop_pass_run_as_one_script_call_in_request_order(agent, redis_store):
    for key in ("a", "b", "c"):
        agent.put_entry("nlu_results", key, key, None)
    agent.put_entry("tool_responses", "t", {"x": [1]}, 60)
    loop_ready(agent)
    calls = evalsha_calls(redis_store)
    asked = [("nlu_results", "a"), ("tool_responses", "t"), ("nlu_results", "missing"), ("nlu_results", "b"),
             ("nlu_results", "a"), ("_lru", "x")]
    futures = []
    for cache_type, key in asked:
        try:
            futures.append(agent.get({"cache_type": cache_type, "key": key}, ctx("get")))
        except BadRequest as exc:
            futures.append(exc)
    assert isinstance(futures[-1], BadRequest)                   # the reserved type never reaches Redis
    results = []
    for future in futures[:-1]:
        try:
            results.append(settle(future, agent.watched()))
        except NotFound as exc:
            results.append(exc)
    assert evalsha_calls(redis_store) == calls + 1
    assert results[0]["value"] == "a" and 295 < results[0]["ttl"] <= 300
    assert results[1] == {"cache_type": "tool_responses", "key": "t", "value": {"x": [1]}, "ttl": results[1]["ttl"]}
    assert 55 < results[1]["ttl"] <= 60
    assert isinstance(results[2], NotFound)
    assert results[3]["value"] == "b" and results[4]["value"] == "a"
    lru = redis_store.client("cache").zrange("cache:_lru:nlu_results", 0, -1)
    assert lru == [b"cache:nlu_results:c", b"cache:nlu_results:b", b"cache:nlu_results:a"]  # the last hit is freshest
    assert agent.put_entry("nlu_results", "d", "d", None)["evicted"] == 1                 # c: least recently used
    assert redis_store.client("cache").get("cache:nlu_results:c") is None


def test_a_pass_with_more_gets_than_one_call_takes_sends_them_in_calls_of_max_batch(agent, redis_store):
    from agents.memory_hub.cache import MAX_BATCH

    for key in ("a", "b", "c"):
        agent.put_entry("nlu_results", key, key, None)
    loop_ready(agent)
    calls = evalsha_calls(redis_store)
    keys = ["abc"[i % 3] for i in range(MAX_BATCH + 10)]
    futures = [agent.get({"cache_type": "nlu_results", "key": key}, ctx("get")) for key in keys]
    assert [settle(future, agent.watched())["value"] for future in futures] == keys
    assert evalsha_calls(redis_store) == calls + 2
    lru = redis_store.client("cache").zrange("cache:_lru:nlu_results", 0, -1)
    assert [member[-1:].decode() for member in lru] == keys[-3:]


def test_gets_queued_when_the_store_closes_are_unavailable(agent):
    loop_ready(agent)
    future = agent.get({"cache_type": "nlu_results", "key": "a"}, ctx("get"))
    agent.stop()
    with pytest.raises(Unavailable):
        future.result(5)


def test_entries_written_outside_the_cache_read_back_as_before(agent, redis_store):
    """Values not written by ``put`` (e.g. by the legacy agent): not JSON, no TTL, another JSON encoding."""
    raw = redis_store.client("cache")
    raw.set("cache:t:text", b"plain \xff text")
    raw.set("cache:t:utf16", '{"a": [1, "\u00e9"]}'.encode("utf-16"))
    raw.set("cache:t:bom", b"\xef\xbb\xbf[1]")
    loop_ready(agent)
    futures = [agent.get({"cache_type": "t", "key": key}, ctx("get")) for key in ("text", "utf16", "bom")]
    text, utf16, bom = (settle(future, agent.watched()) for future in futures)
    assert text == {"cache_type": "t", "key": "text", "value": "plain \ufffd text", "ttl": None}
    assert utf16["value"] == {"a": [1, "\u00e9"]} and bom["value"] == [1]
    assert agent.get_entry("t", "text") == (True, "plain \ufffd text", None)


def test_a_pass_whose_script_call_fails_takes_the_blocking_path(agent, redis_store):
    agent.put_entry("nlu_results", "a", "a", None)
    loop_ready(agent)
    redis_store.client("cache").script_flush()          # the pass's EVALSHA gets NOSCRIPT: the blocking path
    futures = [agent.get({"cache_type": "nlu_results", "key": key}, ctx("get")) for key in ("a", "zz")]
    assert settle(futures[0], agent.watched())["value"] == "a"
    with pytest.raises(NotFound):
        settle(futures[1], agent.watched())
    redis_store.client("cache").script_flush()          # and a pass of one get
    assert settle(agent.get({"cache_type": "nlu_results", "key": "a"}, ctx("get")), agent.watched())["value"] == "a"


def test_a_get_off_the_loop_thread_takes_the_blocking_path(agent):
    import threading

    agent.put_entry("nlu_results", "a", "a", None)
    loop_ready(agent)
    got = []
    thread = threading.Thread(target=lambda: got.append(agent.get({"cache_type": "nlu_results", "key": "a"},
                                                                  ctx("get")).result(10)))
    thread.start()
    thread.join(10)
    assert got[0]["value"] == "a"


def test_route_actions_split_the_cache_key(agent):
    agent.cache_put({"cache_key": "nlu_results:utt-1", "value": "greet", "ttl": None}, ctx("cache_put"))
    assert agent.cache_get({"cache_key": "nlu_results:utt-1"}, ctx("cache_get"))["value"] == "greet"
    assert agent.cache_delete({"cache_key": "nlu_results:utt-1"}, ctx("cache_delete"))["deleted"] is True
    assert split_cache_key("plain") == ("default", "plain")
    assert split_cache_key("a:b:c") == ("a", "b:c")
    with pytest.raises(BadRequest):
        split_cache_key(":x")


def test_native_bad_values(agent):
    with pytest.raises(TooLarge):
        agent.put({"cache_type": "t", "key": "k", "value": "x" * 5000, "ttl": None}, ctx("put"))
    with pytest.raises(BadRequest) as err:
        agent.put({"cache_type": "t", "key": "k", "value": b"\x00", "ttl": None}, ctx("put"))
    assert err.value.details["field"] == "value"


def test_schemas_name_the_field():
    from schemas.memory_hub import cache_manager as schema

    for args, field in [({"value": 1}, "key"), ({"key": "k"}, "value"), ({"key": 3, "value": 1}, "key"),
                        ({"key": "k", "value": 1, "ttl": "x"}, "ttl"), ({"key": "k", "value": None}, "value")]:
        with pytest.raises(BadRequest) as err:
            schema.PUT.validate(args)
        assert err.value.details["field"] == field


# ------------------------------------------------------------------------------------------- redis down

def test_redis_down_then_back_under_the_same_handler(tmp_path, redis_controller):
    store = RedisStore(redis_controller.url)
    try:
        agent = make_agent(tmp_path, store)
        assert legacy(agent, {"action": "put", "cache_type": "t", "key": "k", "value": 1})["status"] == "success"
        redis_controller.kill()
        for request in ({"action": "get", "cache_type": "t", "key": "k"},
                        {"action": "put", "cache_type": "t", "key": "k", "value": 2},
                        {"action": "cache_memory", "memory_id": 1, "data": 1},
                        {"action": "flush", "cache_type": "t"}):
            assert legacy(agent, request) == {"status": "error", "message": "Redis is not available"}
        with pytest.raises(Unavailable) as err:
            native_get(agent, "t", "k")
        assert err.value.code == "unavailable" and err.value.retryable
        health = legacy(agent, {"action": "health"})
        assert health["status"] == "degraded" and health["redis_available"] is False
        assert "redis_info" not in health
        redis_controller.restart()
        assert legacy(agent, {"action": "get", "cache_type": "t", "key": "k"}) == {"status": "success", "data": 1}
        assert legacy(agent, {"action": "health"})["status"] == "ok"
    finally:
        store.close()


def test_store_without_redis_is_unavailable(tmp_path):
    agent = CacheManager(CacheSettings(), None)
    assert legacy(agent, {"action": "get", "cache_type": "t", "key": "k"}) == {"status": "error",
                                                                              "message": "Redis is not available"}
    assert agent.legacy_health(8102)["status"] == "degraded"


def test_cache_store_refuses_bad_type_policies(redis_store):
    with pytest.raises(ConfigError, match="extra_types.x.ttl_s"):
        from_mapping(CacheSettings, {"extra_types": {"x": {"ttl_s": 0}}}, "cache_manager")
    with pytest.raises(ConfigError, match="_lru"):
        from_mapping(CacheSettings, {"extra_types": {"_lru": {"ttl_s": 5}}}, "cache_manager")


# ------------------------------------------------------------------------------------------- near copies

def test_a_repeated_get_is_answered_in_process_and_still_moves_the_lru_order(agent, redis_store):
    for key in ("a", "b", "c"):
        agent.put_entry("nlu_results", key, key, None)
    loop_ready(agent)
    assert agent.cache.near.tracking
    agent.cache.near.lease_s = 60.0     # what is answered in process, not the lease (test_near_cache has it)
    for key in ("a", "b", "c"):
        native_get(agent, "nlu_results", key)                       # read through the script, kept in process
    calls = evalsha_calls(redis_store)
    future = agent.get({"cache_type": "nlu_results", "key": "a"}, ctx("get"))
    assert future.done()                                            # answered before any Redis round trip
    assert future.result(0)["value"] == "a" and 295 < future.result(0)["ttl"] <= 300
    source = agent.watched()[0]
    until = time.monotonic() + 10
    while evalsha_calls(redis_store) == calls and time.monotonic() < until:
        source.tick()                                               # its access still goes to Redis ...
        time.sleep(0.005)
    assert evalsha_calls(redis_store) == calls + 1
    assert not select.select([source.fileno()], [], [], 0.2)[0]     # ... and no reply wakes the loop for it
    assert agent.put_entry("nlu_results", "d", "d", None)["evicted"] == 1
    lru = redis_store.client("cache").zrange("cache:_lru:nlu_results", 0, -1)
    assert lru == [b"cache:nlu_results:c", b"cache:nlu_results:a", b"cache:nlu_results:d"]     # b went, not a


def test_near_copies_follow_writes_expiry_flushes_and_other_clients(agent, redis_store):
    client = redis_store.client("cache")
    agent.put_entry("tool_responses", "t", {"v": 1}, 0.5)
    agent.put_entry("nlu_results", "n", "one", None)
    loop_ready(agent)
    agent.cache.near.lease_s = 60.0
    for _ in range(2):
        assert native_get(agent, "tool_responses", "t")["value"] == {"v": 1}
        assert native_get(agent, "nlu_results", "n")["value"] == "one"
    assert agent.get({"cache_type": "nlu_results", "key": "n"}, ctx("get")).done()
    agent.put_entry("nlu_results", "n", "two", None)                # this hub writes: seen at once
    assert native_get(agent, "nlu_results", "n")["value"] == "two"
    client.set("cache:nlu_results:n", '"three"')                    # another client writes Redis directly
    one_pass(agent.watched()[0])
    assert native_get(agent, "nlu_results", "n")["value"] == "three"
    assert native_get(agent, "nlu_results", "n")["value"] == "three"
    agent.flush_type("nlu_results")
    with pytest.raises(NotFound):
        native_get(agent, "nlu_results", "n")
    time.sleep(0.6)                                                 # the kept copy expires with the entry
    with pytest.raises(NotFound):
        native_get(agent, "tool_responses", "t")
