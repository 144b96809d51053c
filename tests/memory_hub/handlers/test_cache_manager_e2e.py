"""CacheManager end to end: MemoryHub started as a process (``python -m agents.memory_hub``), driven on its legacy
ports by a REQ client sending JSON as legacy clients did, on the native port (action and route form), and over
HTTP; then Redis is killed under a running hub and brought back without restarting the hub.
"""
from __future__ import annotations

import json
import time
import urllib.error
import urllib.request

import pytest

from agents.memory_hub.stores.embedded_redis import EmbeddedRedis
from bus.errors import BadRequest, NotFound, TooLarge, Unavailable, UnknownAction
from tests.support.hubproc import HubProcess

MAIN, HEALTH = 7102, 8102


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    with HubProcess("memory_hub", tmp_path_factory.mktemp("cache-e2e"),
                    config={"cache_manager": {"types": {"nlu_results": {"max_entries": 4}}}}) as running:
        yield running


def send(hub: HubProcess, request) -> dict:
    return hub.legacy_request(MAIN, request)


# ------------------------------------------------------------------------------------------- legacy port

def test_every_legacy_action_as_legacy_clients_send_it(hub):
    assert send(hub, {"action": "cache_memory", "memory_id": 101, "data": {"content": "tea", "importance": 0.7}}) == \
        {"status": "success", "message": "Memory cached successfully"}
    assert send(hub, {"action": "get_cached_memory", "memory_id": 101}) == \
        {"status": "success", "data": {"content": "tea", "importance": 0.7}}
    assert send(hub, {"action": "invalidate_memory_cache", "memory_id": 101}) == \
        {"status": "success", "message": "Memory cache entry invalidated"}
    assert send(hub, {"action": "get_cached_memory", "memory_id": 101}) == \
        {"status": "error", "message": "Cache miss", "data": None}
    assert send(hub, {"action": "invalidate_memory_cache", "memory_id": 101}) == \
        {"status": "success", "message": "Memory cache entry not found"}
    assert send(hub, {"action": "put", "cache_type": "model_decisions", "key": "route:42", "value": ["gpu", 1]}) == \
        {"status": "success", "message": "Cache entry stored"}
    assert send(hub, {"action": "get", "cache_type": "model_decisions", "key": "route:42"}) == \
        {"status": "success", "data": ["gpu", 1]}
    assert send(hub, {"action": "invalidate", "cache_type": "model_decisions", "key": "route:42"}) == \
        {"status": "success", "message": "Cache entry invalidated"}
    assert send(hub, {"action": "invalidate", "cache_type": "model_decisions", "key": "route:42"}) == \
        {"status": "success", "message": "Cache entry not found"}
    for i in range(3):
        send(hub, {"action": "put", "cache_type": "tool_responses", "key": f"t{i}", "value": i, "ttl": 60})
    assert send(hub, {"action": "flush", "cache_type": "tool_responses"}) == \
        {"status": "success", "message": "Flushed 3 cache entries"}
    assert send(hub, {"action": "frobnicate"}) == {"status": "error", "message": "Unknown action: frobnicate"}


@pytest.mark.parametrize("action", ["ping", "health", "health_check"])
def test_health_actions_on_the_main_port(hub, action):
    reply = send(hub, {"action": action})
    assert reply["status"] == "ok" and reply["redis_available"] is True and reply["name"] == "CacheManager"
    assert set(reply["redis_info"]) == {"memory_used", "clients_connected", "uptime"}


def test_health_port_answers_any_message(hub):
    for message in ({"action": "health_check"}, {"anything": 1}):
        reply = hub.legacy_request(HEALTH, message)
        assert reply["status"] == "ok" and reply["port"] == MAIN and reply["health_port"] == HEALTH
        assert {"redis_available", "uptime", "name", "version", "error_reporting", "ready", "initialized",
                "message", "timestamp", "active_threads"} <= set(reply)
    assert hub.legacy_request(HEALTH, None, raw=b"not json")["status"] == "ok"


@pytest.mark.parametrize("request_, message", [
    ({"action": "get_cached_memory"}, "Missing memory_id parameter"),
    ({"action": "cache_memory", "memory_id": 1}, "Missing required parameters"),
    ({"action": "get", "cache_type": "x"}, "Missing cache_type or key parameter"),
    ({"action": "put", "cache_type": "x", "key": "k"}, "Missing required parameters"),
    ({"action": "flush"}, "Missing cache_type parameter"),
    ({"action": "get", "cache_type": {"t": 1}, "key": "k"}, "Invalid cache_type parameter"),
    ({"action": "put", "cache_type": "x", "key": "k", "value": 1, "ttl": "1h"}, "Invalid ttl parameter"),
    ({"action": "put", "cache_type": "x", "key": "k", "value": "v" * 1_100_000}, "value larger than 1048576 bytes"),
])
def test_bad_legacy_input(hub, request_, message):
    assert send(hub, request_) == {"status": "error", "message": message}


def test_undecodable_legacy_frames_get_base_agent_replies(hub):
    assert hub.legacy_request(MAIN, None, raw=b"{not json") == {"status": "error", "error": "Invalid JSON request"}
    assert hub.legacy_request(MAIN, None, raw=b"\xff\xfe") == {"status": "error", "error": "Invalid UTF-8 request"}


def test_lru_bound_through_the_hub(hub, client):
    for i in range(6):
        send(hub, {"action": "put", "cache_type": "nlu_results", "key": f"u{i}", "value": i})
    present = [i for i in range(6)
               if send(hub, {"action": "get", "cache_type": "nlu_results", "key": f"u{i}"})["status"] == "success"]
    assert present == [2, 3, 4, 5]
    assert client.call("CacheManager", "stats")["types"]["nlu_results"]["entries"] == 4


# ------------------------------------------------------------------------------------------- native

def test_native_actions(client):
    put = client.call("CacheManager", "put", {"cache_type": "context_summaries", "key": "s1", "value": {"sum": "hi"}})
    assert put == {"cache_type": "context_summaries", "key": "s1", "ttl": 3600, "evicted": 0}
    got = client.call("CacheManager", "get", {"cache_type": "context_summaries", "key": "s1"})
    assert got["value"] == {"sum": "hi"} and 3590 < got["ttl"] <= 3600
    assert client.call("CacheManager", "invalidate", {"cache_type": "context_summaries", "key": "s1"})["deleted"]
    with pytest.raises(NotFound):
        client.call("CacheManager", "get", {"cache_type": "context_summaries", "key": "s1"})
    client.call("CacheManager", "put", {"key": "plain", "value": 1, "ttl": 30})
    assert client.call("CacheManager", "flush", {"cache_type": "default"}) == {"cache_type": "default", "flushed": 1}


def test_native_and_legacy_share_entries(hub, client):
    client.call("CacheManager", "put", {"cache_type": "memory", "key": "77", "value": {"m": 1}})
    assert send(hub, {"action": "get_cached_memory", "memory_id": 77}) == {"status": "success", "data": {"m": 1}}


def test_route_form_get_put_delete(client):
    assert client.route("PUT", "/cache/nlu_results:utt-9", {"value": {"intent": "greet"}, "ttl": 120})["ttl"] == 120
    got = client.route("GET", "/cache/nlu_results:utt-9")
    assert got["cache_type"] == "nlu_results" and got["key"] == "utt-9" and got["value"] == {"intent": "greet"}
    assert client.route("DELETE", "/cache/nlu_results:utt-9")["deleted"] is True
    with pytest.raises(NotFound):
        client.route("GET", "/cache/nlu_results:utt-9")
    with pytest.raises(UnknownAction):
        client.route("POST", "/cache/x")


def test_json_native_client(hub):
    with hub.client(encoding="json") as json_client:
        json_client.call("CacheManager", "put", {"cache_type": "t", "key": "j", "value": [1, "a"]})
        assert json_client.call("CacheManager", "get", {"cache_type": "t", "key": "j"})["value"] == [1, "a"]


@pytest.mark.parametrize("args, field", [({"value": 1}, "key"), ({"key": "k"}, "value"),
                                         ({"key": 5, "value": 1}, "key"), ({"key": "k", "value": 1, "ttl": "x"}, "ttl"),
                                         ({"key": "k", "value": 1, "color": "red"}, "color")])
def test_native_bad_request_names_the_field(client, args, field):
    with pytest.raises(BadRequest) as err:
        client.call("CacheManager", "put", args)
    assert field in err.value.message


def test_native_oversized_value(client):
    with pytest.raises(TooLarge):
        client.call("CacheManager", "put", {"key": "big", "value": "x" * 1_100_000})


def test_http_route(hub):
    token = hub.token()

    def http(method: str, path: str, body: dict | None = None) -> tuple[int, dict]:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(hub.http_url + path, data=data, method=method,
                                     headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                return resp.status, json.loads(resp.read())
        except urllib.error.HTTPError as err:
            return err.code, json.loads(err.read())

    status, _ = http("PUT", "/cache/tool_responses:curl", {"value": "ok"})
    assert status == 200
    status, body = http("GET", "/cache/tool_responses:curl")
    assert status == 200 and json.dumps(body).count('"ok"') >= 1
    status, _ = http("GET", "/cache/tool_responses:none")
    assert status == 404


# ------------------------------------------------------------------------------------------- Redis dies

def wait_for(predicate, timeout: float = 20.0, interval: float = 0.1):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval)


def _native_get(client, cache_type: str, key: str) -> dict | None:
    try:
        return client.call("CacheManager", "get", {"cache_type": cache_type, "key": key})
    except Unavailable:
        return None


@pytest.mark.slow
def test_redis_killed_mid_run_then_restarted_without_restarting_the_hub(tmp_path):
    redis_server = EmbeddedRedis(tmp_path / "redis")
    url = redis_server.start()
    try:
        config = {"storage": {"redis_url": url}, "cache_manager": {"health_refresh_s": 0.2}}
        with HubProcess("memory_hub", tmp_path / "hub", config=config) as hub, hub.client() as client:
            assert send(hub, {"action": "put", "cache_type": "nlu_results", "key": "u1", "value": {"i": 1}})[
                "status"] == "success"
            hub_pid = hub.proc.pid
            redis_server.kill()

            for request in ({"action": "get", "cache_type": "nlu_results", "key": "u1"},
                            {"action": "put", "cache_type": "nlu_results", "key": "u2", "value": 2},
                            {"action": "get_cached_memory", "memory_id": 1},
                            {"action": "cache_memory", "memory_id": 1, "data": {"a": 1}},
                            {"action": "invalidate", "cache_type": "nlu_results", "key": "u1"},
                            {"action": "flush", "cache_type": "nlu_results"}):
                assert send(hub, request) == {"status": "error", "message": "Redis is not available"}
            with pytest.raises(Unavailable) as err:        # natively: `unavailable`, retryable
                client.call("CacheManager", "get", {"cache_type": "nlu_results", "key": "u1"})
            assert err.value.code == "unavailable" and err.value.retryable
            health = wait_for(lambda: (lambda r: r if r["status"] == "degraded" else None)(
                hub.legacy_request(HEALTH, {"action": "health_check"})))
            assert health and health["redis_available"] is False and "redis_info" not in health
            with hub.client(token=None) as anonymous:                              # the hub keeps serving
                assert anonymous.call("hub", "ping") is not None
            assert hub.legacy_request(7111, {"action": "get_context"})["status"] == "success"

            redis_server.start()                                                   # same socket, AOF reloaded
            reply = wait_for(lambda: (lambda r: r if r["status"] == "success" else None)(
                send(hub, {"action": "get", "cache_type": "nlu_results", "key": "u1"})))
            assert reply == {"status": "success", "data": {"i": 1}}                # acknowledged write survived
            assert send(hub, {"action": "put", "cache_type": "nlu_results", "key": "u2", "value": 2})[
                "status"] == "success"
            native = wait_for(lambda: _native_get(client, "nlu_results", "u2"))   # auth's breaker may lag
            assert native and native["value"] == 2
            assert wait_for(lambda: hub.legacy_request(HEALTH, {})["status"] == "ok")
            assert hub.proc.pid == hub_pid and hub.proc.poll() is None
    finally:
        redis_server.stop()
