"""Redis copies of SQL rows (``agents.memory_hub.hot_cache``) against a real redis-server that is killed and
restarted, and a real migrated SQLite: reads are served from Redis, and a stale copy is never served.

Every domain that reads through a ``HotCache`` (key/values, knowledge documents, sessions, memories, context
windows) is checked the same way: a copy is made and served, Redis dies, a write commits while it is down
(its invalidation cannot reach Redis), Redis comes back with the old copy in it (as its append-only file
reloads it), and the next reads return the new value, then come from Redis again.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from collections.abc import Callable

import pytest

from agents.memory_hub.context_window import ContextWindowSettings, ContextWindows
from agents.memory_hub.hot_cache import HotCache
from agents.memory_hub.knowledge import Knowledge
from agents.memory_hub.kv import KeyValues
from agents.memory_hub.memories import Memories
from agents.memory_hub.sessions import Sessions
from agents.memory_hub.stores.redis_store import RedisStore


@dataclass
class Domain:
    cache: HotCache
    key: str                               # the key of the row's copy in the cache's namespace
    write: Callable[[str], Any]
    read: Callable[[], str]


def kv_domain(sql, redis) -> Domain:
    kv = KeyValues(sql, redis)
    return Domain(kv.cache, "k", lambda v: kv.set("k", v), lambda: kv.get("k")["value"])


def doc_domain(sql, redis) -> Domain:
    kb = Knowledge(Memories(sql, redis), redis)
    return Domain(kb.cache, "d", lambda v: kb.doc_put("d", v), lambda: kb.doc_get("d")["content"])


def session_domain(sql, redis) -> Domain:
    sessions = Sessions(Memories(sql, redis), redis)
    sid = sessions.create(user_id="ana")["session_id"]
    return Domain(sessions.cache, sid, lambda v: sessions.update(sid, metadata={"v": v}),
                  lambda: sessions.get(sid)["metadata"]["v"])


def memory_domain(sql, redis) -> Domain:
    memories = Memories(sql, redis)
    mid = memories.add({"content": "v0"})
    return Domain(memories.cache, mid, lambda v: memories.update(mid, {"content": v}),
                  lambda: memories.get(mid, touch=False)["content"])


def context_domain(sql, redis) -> Domain:
    windows = ContextWindows(sql, ContextWindowSettings(), redis)
    return Domain(windows.cache, "c", lambda v: windows.add("c", v, importance=0.5),
                  lambda: windows.get("c")[0]["text"])


DOMAINS = {"kv": kv_domain, "doc": doc_domain, "session": session_domain, "memory": memory_domain,
           "context": context_domain}


@pytest.fixture
def redis(redis_controller):
    store = RedisStore(redis_controller.url)
    yield store
    store.close()


def served_from_redis(domain: Domain, expected: str) -> bool:
    hits = domain.cache.hits
    return domain.read() == expected and domain.cache.hits == hits + 1


def put_back(redis: RedisStore, domain: Domain, saved: tuple[bytes, bytes]) -> None:
    """What an append-only file that missed the last writes reloads: the old generation and copy."""
    client = domain.cache.ns.client
    client.set(domain.cache.gen_key, saved[0])
    client.set(domain.cache.ns.key(domain.key), saved[1])


def saved_copy(domain: Domain) -> tuple[bytes, bytes]:
    client = domain.cache.ns.client
    return client.get(domain.cache.gen_key), client.get(domain.cache.ns.key(domain.key))


@pytest.mark.parametrize("name", list(DOMAINS))
def test_a_stale_copy_is_never_served_after_redis_was_down_during_a_write(name, sql_store, redis, redis_controller):
    domain = DOMAINS[name](sql_store, redis)
    domain.write("v1")
    assert domain.read() == "v1"                          # SQL, then copied to Redis
    assert served_from_redis(domain, "v1")
    saved = saved_copy(domain)
    redis_controller.kill()
    domain.write("v2")                                    # committed; its invalidation cannot reach Redis
    assert domain.read() == "v2"
    redis_controller.restart()
    put_back(redis, domain, saved)
    domain.cache._down_until = 0.0                        # skip the back-off pause
    assert domain.read() == "v2"                          # the old copy is back in Redis, and not served
    assert domain.read() == "v2"
    assert served_from_redis(domain, "v2")                # copies are served again after the bump


@pytest.mark.parametrize("name", ["kv", "memory"])
def test_a_redis_restart_that_lost_an_invalidation_is_noticed_without_any_failed_call(name, sql_store, redis,
                                                                                         redis_controller):
    domain = DOMAINS[name](sql_store, redis)
    domain.write("v1")
    domain.read()
    assert served_from_redis(domain, "v1")
    saved = saved_copy(domain)
    domain.write("v2")                                    # invalidated in Redis ...
    redis_controller.restart()                            # ... which dies before persisting it
    put_back(redis, domain, saved)
    assert domain.read() == "v2"                          # the new run_id made the cache dirty
    assert domain.read() == "v2"
    assert served_from_redis(domain, "v2")


def test_a_reader_never_puts_back_a_copy_older_than_a_concurrent_write(sql_store, redis_store):
    kv = KeyValues(sql_store, redis_store)
    kv.set("k", "v1")
    kv.get("k")
    kv.set("k", "v1b")
    found = kv.cache.lookup("k")                          # a reader misses ...
    assert not found.hit
    stale = {"e": None, "v": "v1b"}                       # ... and reads SQL
    kv.set("k", "v2")                                     # a writer commits and invalidates meanwhile
    assert kv.cache.fill("k", found, stale) is False      # the reader's older copy is refused
    assert kv.get("k")["value"] == "v2"
    assert kv.get("k")["value"] == "v2" and kv.cache.hits >= 1


def test_a_new_cache_disowns_copies_left_by_a_previous_process(sql_store, redis_store):
    first = KeyValues(sql_store, redis_store)
    first.set("k", "v1")
    first.get("k")
    gen = redis_store.client("cache").get(first.cache.gen_key)
    second = KeyValues(sql_store, redis_store)            # e.g. the hub restarted after a crash
    assert second.get("k")["value"] == "v1"
    assert redis_store.client("cache").get(first.cache.gen_key) != gen


def test_without_redis_every_read_goes_to_sql(sql_store):
    kv = KeyValues(sql_store, None)
    kv.set("k", "v1")
    assert kv.get("k")["value"] == "v1" and kv.cache.hits == 0
