"""RedisReader against a real redis-server: pipelined reads driven like the router loop drives them, replies
in order, RESP2/RESP3 parsing across partial reads, and a stalled server failing the waiting reads (never
blocking the caller) — plus, end to end, a stalled Redis that delays neither ``hub.ping`` nor the reply."""
from __future__ import annotations

import os
import signal
import threading
import time
from concurrent.futures import Future

import msgpack
import pytest
import redis
import zmq

from agents.memory_hub.stores.redis_reader import (RedisReader, _Incomplete, _needed, encode_command,
                                                    parse_reply)
from agents.memory_hub.stores.redis_store import RedisStore, RedisUnavailable
from tests.support.hubproc import HubProcess
from tests.support.loop import settle


def read(reader: RedisReader, *command) -> object:
    future: Future = Future()
    while not reader.send(future.set_result, *command):     # the first send starts the background connect
        reader.tick()
        time.sleep(0.001)
    return settle(future, [reader])


def test_pipelined_reads_answer_in_order(redis_store):
    client = redis_store.client("cache")
    client.set("kv:a", b"x\r\ny" * 1000)                      # a value with CRLF in it, larger than one read
    reader = RedisReader(client.connection_pool)
    assert read(reader, "MGET", "kv:a", "kv:missing") == [b"x\r\ny" * 1000, None]
    futures = [Future() for _ in range(500)]
    for i, future in enumerate(futures):
        assert reader.send(future.set_result, "ECHO", f"m{i}")
    assert [settle(f, [reader]) for f in futures] == [f"m{i}".encode() for i in range(500)]
    assert isinstance(read(reader, "INCR", "kv:a"), redis.ResponseError)
    reader.close()


def test_partial_and_resp3_replies_parse():
    wire = b"*3\r\n$3\r\nabc\r\n_\r\n:7\r\n%1\r\n+k\r\n#t\r\n"
    for cut in range(1, len(wire) - 12):
        with pytest.raises(_Incomplete):
            parse_reply(wire[:cut], 0)
        assert _needed(wire[:cut], 0) > cut                       # the reader waits for more
    value, end = parse_reply(wire, 0)
    assert _needed(wire, 0) == end and _needed(bytearray(wire), end) == len(wire)
    assert value == [b"abc", None, 7] and parse_reply(wire, end)[0] == [b"k", True]
    assert encode_command("GET", b"k") == b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n"


def test_a_stalled_server_fails_the_waiting_reads_without_blocking(redis_controller):
    store = RedisStore(redis_controller.url)
    reader = RedisReader(store.client("cache").connection_pool, timeout_s=0.3)
    assert read(reader, "PING") in (b"PONG", "PONG")
    os.kill(redis_controller.pid, signal.SIGSTOP)
    try:
        future: Future = Future()
        assert reader.send(future.set_result, "PING")           # returns at once
        assert isinstance(settle(future, [reader]), RedisUnavailable)
        assert reader.fileno() is None                           # dropped; reconnects on a later send
    finally:
        os.kill(redis_controller.pid, signal.SIGCONT)
    assert read(reader, "PING") in (b"PONG", "PONG")
    reader.close()
    store.close()


def test_a_stalled_redis_delays_neither_ping_nor_the_kv_reply(tmp_path, redis_controller):
    with HubProcess("memory_hub", tmp_path / "hub", config={"storage": {"redis_url": redis_controller.url}}) as hub:
        with hub.client() as client:
            client.call("MemoryClient", "kv_set", {"key": "k", "value": 1})
            for _ in range(3):                                     # copied to Redis, reader connected
                assert client.call("MemoryClient", "kv_get", {"key": "k"})["value"] == 1

            def near_hits() -> int:
                return client.call("hub", "health")["checks"]["MemoryClient.kv_near_copies"]["detail"]["hits"]

            until = time.monotonic() + 10                          # and "k" is served from this hub's copy
            while near_hits() == 0 and time.monotonic() < until:
                assert client.call("MemoryClient", "kv_get", {"key": "k"})["value"] == 1
            assert near_hits() > 0
        sock = zmq.Context.instance().socket(zmq.DEALER)
        sock.setsockopt(zmq.RCVTIMEO, 30000)
        sock.setsockopt(zmq.LINGER, 0)
        sock.connect(hub.endpoint)
        token = hub.token()
        os.kill(redis_controller.pid, signal.SIGSTOP)
        try:
            time.sleep(0.3)         # past the near copies' lease: "k" is not served from this hub's copy any more
            sock.send_multipart([b"", msgpack.packb({"v": 1, "id": 1, "agent": "MemoryClient", "action": "kv_get",
                                                      "args": {"key": "k"}, "token": token})])
            sock.send_multipart([b"", msgpack.packb({"v": 1, "id": 2, "agent": "hub", "action": "ping"})])
            first = msgpack.unpackb(sock.recv_multipart()[-1])
            assert first["id"] == 2 and first["ok"]                  # the loop never waited for Redis
            second = msgpack.unpackb(sock.recv_multipart()[-1])
            assert second["id"] == 1 and second["result"]["value"] == 1   # served from SQL meanwhile
        finally:
            os.kill(redis_controller.pid, signal.SIGCONT)
            sock.close()


def test_only_the_driving_thread_may_send(redis_store):
    reader = RedisReader(redis_store.client("cache").connection_pool)
    assert read(reader, "PING") in (b"PONG", "PONG")          # this thread drives it now
    answers = []
    other = threading.Thread(target=lambda: answers.append(reader.send(answers.append, "PING")))
    other.start()
    other.join()
    assert answers == [False]                                  # e.g. the HTTP server's thread: use the blocking path
    reader.close()


def test_a_large_reply_arriving_in_many_parts_is_parsed_once_whole(redis_store):
    client = redis_store.client("cache")
    values = [bytes([65 + i]) * (200_000 + i) for i in range(20)]       # ~4 MB: many reads of 64 KiB
    for i, value in enumerate(values):
        client.set(f"kv:big{i}", value)
    reader = RedisReader(client.connection_pool)
    keys = [f"kv:big{i}" for i in range(20)]
    futures = [Future() for _ in range(3)]
    assert read(reader, "PING") in (b"PONG", "PONG")
    assert reader.send(futures[0].set_result, "MGET", *keys)
    assert reader.send(futures[1].set_result, "GET", "kv:big3")
    assert reader.send(futures[2].set_result, "MGET", "kv:big19", "kv:none")
    assert settle(futures[0], [reader]) == values
    assert settle(futures[1], [reader]) == values[3]
    assert settle(futures[2], [reader]) == [values[19], None]
    reader.close()
