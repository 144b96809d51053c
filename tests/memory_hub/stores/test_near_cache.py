"""NearCache: copies kept only on a tracking connection, a write's drop beats a reply read before it, Redis's
invalidation pushes (one key, the generation key, a flush) drop copies, and the byte budget holds. Then,
against a real redis-server, a tracking ``RedisReader`` receives those pushes between its replies."""
from __future__ import annotations

import os
import signal
import time
from concurrent.futures import Future

from agents.memory_hub.stores.near_cache import ENTRY_OVERHEAD, NearCache
from agents.memory_hub.stores.redis_reader import RedisReader
from agents.memory_hub.stores.redis_store import RedisStore
from tests.support.loop import one_pass, settle


def tracking_cache(max_bytes: int = 1 << 20, clear_on: tuple[bytes, ...] = ()) -> NearCache:
    near = NearCache(max_bytes, clear_on, lease_s=3600)
    near.start()
    near.confirm(time.monotonic())
    return near


def test_copies_are_kept_only_while_the_connection_tracks() -> None:
    near = NearCache(1 << 20, lease_s=3600)
    near.confirm(time.monotonic())
    assert near.epoch() is None
    near.put(b"k", "v", 1, near.epoch())
    assert near.get(b"k") is None
    near.start()
    near.put(b"k", "v", 1, near.epoch())
    assert near.get(b"k") == "v"
    near.reset()                                          # the connection (and its pushes) are gone
    assert near.get(b"k") is None and near.epoch() is None


def test_copies_are_served_only_while_redis_answered_within_the_lease() -> None:
    near = NearCache(1 << 20, lease_s=0.2)
    near.start()
    near.put(b"k", "v", 1, near.epoch())
    assert near.get(b"k") is None                          # nothing answered yet
    near.confirm(time.monotonic() - 0.3)                   # a reply to a command sent too long ago
    assert near.get(b"k") is None
    near.confirm(time.monotonic())
    assert near.get(b"k") == "v"


def test_a_reply_read_before_a_drop_is_not_kept() -> None:
    near = tracking_cache()
    sent_at = near.epoch()                                # a read is sent ...
    near.drop([b"other"])                                 # ... a writer of this hub drops (any key) ...
    near.put(b"k", "old", 3, sent_at)                     # ... and the read's reply arrives
    assert near.get(b"k") is None
    near.put(b"k", "new", 3, near.epoch())
    assert near.get(b"k") == "new"


def test_pushes_drop_their_keys_and_the_generation_key_or_a_flush_drops_all() -> None:
    near = tracking_cache(clear_on=(b"_gen:kv:",))
    for key in (b"a", b"b", b"c"):
        near.put(key, key, 1, near.epoch())
    near.invalidated([b"a", b"unknown"])
    assert (near.get(b"a"), near.get(b"b")) == (None, b"b")
    near.invalidated([b"_gen:kv:"])
    assert len(near) == 0 and near.size_bytes == 0
    near.put(b"c", b"c", 1, near.epoch())
    near.invalidated(None)                                # FLUSHDB / FLUSHALL
    assert near.get(b"c") is None


def test_the_byte_budget_drops_the_oldest_copies_and_never_keeps_a_large_value() -> None:
    per_entry = 100 + 4 + ENTRY_OVERHEAD
    near = tracking_cache(max_bytes=per_entry * 64)       # 64 entries; entries up to 1/64 of the budget
    for i in range(70):
        near.put(b"k%03d" % i, i, 100, near.epoch())
    assert len(near) == 64 and near.size_bytes == 64 * per_entry
    assert near.get(b"k005") is None and near.get(b"k006") == 6 and near.get(b"k069") == 69
    near.put(b"big", "x", near.max_entry_bytes + 1, near.epoch())
    assert near.get(b"big") is None


def read(reader: RedisReader, *command: bytes | str) -> object:
    future: Future = Future()
    while not reader.send(future.set_result, *command):
        reader.tick()
        time.sleep(0.001)
    return settle(future, [reader])


def drive_until(reader: RedisReader, condition, timeout: float = 10.0) -> bool:
    until = time.monotonic() + timeout
    while not condition() and time.monotonic() < until:
        one_pass(reader, 0.01)
    return condition()


def test_a_tracking_reader_gets_redis_invalidations_from_any_client(redis_store) -> None:
    client = redis_store.client("cache")
    client.mset({"kv:a": b"1", "kv:b": b"2"})
    near = NearCache(1 << 20, lease_s=60)
    reader = RedisReader(client.connection_pool, near=near)
    try:
        assert read(reader, "MGET", "kv:a", "kv:b") == [b"1", b"2"]       # RESP3 replies parse as before
        assert near.tracking
        epoch = near.epoch()
        near.put(b"kv:a", b"1", 1, epoch)
        near.put(b"kv:b", b"2", 1, epoch)
        client.set("kv:a", b"changed")                                     # another client writes
        assert drive_until(reader, lambda: near.get(b"kv:a") is None)
        assert near.get(b"kv:b") == b"2"
        assert read(reader, "GET", "kv:b") == b"2"                         # replies still pair with requests
        client.flushdb()
        assert drive_until(reader, lambda: len(near) == 0)
        near.put(b"kv:b", b"2", 1, near.epoch())
        client.client_kill_filter(_type="normal", skipme=True)             # the reader's connection drops
        assert drive_until(reader, lambda: not near.tracking)
        assert near.get(b"kv:b") is None
        assert read(reader, "PING") in (b"PONG", "PONG") and near.tracking   # tracking again, copies kept
    finally:
        reader.close()


def test_a_stalled_redis_stops_the_serving_of_copies_within_the_lease(redis_controller) -> None:
    store = RedisStore(redis_controller.url)
    near = NearCache(1 << 20, lease_s=0.2)
    reader = RedisReader(store.client("cache").connection_pool, timeout_s=5.0, near=near)
    try:
        assert read(reader, "GET", "kv:a") is None and near.tracking
        near.put(b"kv:a", b"1", 1, near.epoch())
        assert drive_until(reader, lambda: near.get(b"kv:a") == b"1")   # idle passes: pings keep the lease
        os.kill(redis_controller.pid, signal.SIGSTOP)      # stalled: neither pushes nor replies arrive
        try:
            assert drive_until(reader, lambda: near.get(b"kv:a") is None, timeout=2)
            assert near.tracking                           # the lease ran out, not the 5 s reply timeout
        finally:
            os.kill(redis_controller.pid, signal.SIGCONT)
        assert drive_until(reader, lambda: near.get(b"kv:a") == b"1")    # answered again: served again
    finally:
        reader.close()
        store.close()
