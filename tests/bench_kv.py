"""KV benchmark: CacheManager native ``put`` / ``get`` through MemoryHub next to redis-py doing the same SET / GET
against the same redis-server in the same run, with the ratio. Run: ``python -m tests.bench_kv`` (part of
``make bench``). Figures only; nothing is asserted.

Setup: one private redis-server (unix socket) started here; the hub runs as a process with
``storage.redis_url`` pointing at it, so both paths hit the same server. Values are the same small JSON
document. The hub path costs a msgpack round trip over loopback TCP, JWT verification, a worker thread and
one Lua script (SET + LRU bookkeeping) per call; the redis-py baseline is a plain SET / GET on the unix socket.
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from collections.abc import Callable

import msgpack
import redis
import zmq

from agents.memory_hub.cache import PUT_LUA
from agents.memory_hub.stores.embedded_redis import EmbeddedRedis
from tests.support.hubproc import HubProcess

VALUE = {"intent": "weather", "slots": {"city": "Cebu", "day": "tomorrow"}, "confidence": 0.93}
KEYS = 1000


def timed(n: int, fn: Callable[[int], None]) -> float:
    started = time.perf_counter()
    for i in range(n):
        fn(i)
    return n / (time.perf_counter() - started)


def redis_py(url: str, n: int, batch: int) -> dict[str, float]:
    client = redis.Redis.from_url(url)
    text = json.dumps(VALUE, separators=(",", ":"))
    put = client.register_script(PUT_LUA)
    out = {
        "set": timed(n, lambda i: client.set(f"cache:rp:{i % KEYS}", text, px=3_600_000)),
        "get": timed(n, lambda i: json.loads(client.get(f"cache:rp:{i % KEYS}"))),
        "lua_put": timed(n, lambda i: put(keys=[f"cache:rl:{i % KEYS}", "cache:_lru:rl"],
                                          args=[text, 3_600_000, 0])),
    }
    started = time.perf_counter()
    for start in range(0, n, batch):
        pipe = client.pipeline(transaction=False)
        for i in range(start, min(n, start + batch)):
            pipe.set(f"cache:rp:{i % KEYS}", text, px=3_600_000)
        pipe.execute()
    out["set_pipelined"] = n / (time.perf_counter() - started)
    started = time.perf_counter()
    for start in range(0, n, batch):
        pipe = client.pipeline(transaction=False)
        for i in range(start, min(n, start + batch)):
            pipe.get(f"cache:rp:{i % KEYS}")
        [json.loads(v) for v in pipe.execute()]
    out["get_pipelined"] = n / (time.perf_counter() - started)
    client.close()
    return out


def frames(token: str, action: str, n: int) -> list[bytes]:
    def args(i: int) -> dict:
        base = {"cache_type": "bench", "key": f"k{i % KEYS}"}
        return {**base, "value": VALUE, "ttl": 3600} if action == "put" else base

    return [msgpack.packb({"v": 1, "id": i, "agent": "CacheManager", "action": action, "args": args(i),
                           "token": token}) for i in range(n)]


def hub_sequential(endpoint: str, payloads: list[bytes]) -> float:
    sock = zmq.Context.instance().socket(zmq.REQ)
    sock.connect(endpoint)
    started = time.perf_counter()
    for payload in payloads:
        sock.send(payload)
        reply = msgpack.unpackb(sock.recv())
        if not reply.get("ok"):
            raise RuntimeError(f"hub replied {reply}")
    rate = len(payloads) / (time.perf_counter() - started)
    sock.close(linger=0)
    return rate


def hub_pipelined(endpoint: str, payloads: list[bytes], window: int) -> float:
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.setsockopt(zmq.SNDHWM, 0)
    sock.setsockopt(zmq.RCVHWM, 0)
    sock.connect(endpoint)
    sent = received = 0
    started = time.perf_counter()
    while received < len(payloads):
        while sent < len(payloads) and sent - received < window:
            sock.send_multipart([b"", payloads[sent]])
            sent += 1
        reply = msgpack.unpackb(sock.recv_multipart()[-1])
        if not reply.get("ok"):
            raise RuntimeError(f"hub replied {reply}")
        received += 1
    rate = len(payloads) / (time.perf_counter() - started)
    sock.close(linger=0)
    return rate


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=5000, help="calls per sequential measurement")
    parser.add_argument("--pipelined", type=int, default=20000, help="calls per pipelined measurement")
    parser.add_argument("--window", type=int, default=200, help="requests in flight (DEALER) / pipeline batch")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        server = EmbeddedRedis(Path(tmp) / "redis")
        url = server.start()
        try:
            baseline = redis_py(url, args.n, args.window)
            config = {"storage": {"redis_url": url}, "hub": {"queue_limit": 5000},
                      "cache_manager": {"extra_types": {"bench": {"ttl_s": 3600, "max_entries": 2 * KEYS}}}}
            with HubProcess("memory_hub", Path(tmp) / "hub", config=config) as hub:
                token = hub.token()
                hub_pipelined(hub.endpoint, frames(token, "put", 2000), args.window)         # warm up
                put_seq = hub_sequential(hub.endpoint, frames(token, "put", args.n))
                get_seq = hub_sequential(hub.endpoint, frames(token, "get", args.n))
                put_pipe = hub_pipelined(hub.endpoint, frames(token, "put", args.pipelined), args.window)
                get_pipe = hub_pipelined(hub.endpoint, frames(token, "get", args.pipelined), args.window)
        finally:
            server.stop()
    print("## KV: CacheManager native put/get through MemoryHub vs redis-py against the same Redis")
    print(f"{'what':60} {'ops/s':>10} {'baseline':>10} {'ratio':>7}")
    rows = [
        ("redis-py SET, sequential (baseline)", baseline["set"], baseline["set"]),
        ("redis-py GET, sequential (baseline)", baseline["get"], baseline["get"]),
        ("redis-py EVALSHA put script (SET + LRU), sequential", baseline["lua_put"], baseline["set"]),
        (f"redis-py SET, pipelined x{args.window} (baseline)", baseline["set_pipelined"], baseline["set_pipelined"]),
        (f"redis-py GET, pipelined x{args.window} (baseline)", baseline["get_pipelined"], baseline["get_pipelined"]),
        ("hub CacheManager.put, sequential REQ", put_seq, baseline["set"]),
        ("hub CacheManager.get, sequential REQ", get_seq, baseline["get"]),
        (f"hub CacheManager.put, pipelined DEALER x{args.window}", put_pipe, baseline["set_pipelined"]),
        (f"hub CacheManager.get, pipelined DEALER x{args.window}", get_pipe, baseline["get_pipelined"]),
        (f"hub CacheManager.put, pipelined DEALER x{args.window} vs sequential SET", put_pipe, baseline["set"]),
        (f"hub CacheManager.get, pipelined DEALER x{args.window} vs sequential GET", get_pipe, baseline["get"]),
    ]
    for name, value, base in rows:
        print(f"{name:60} {value:10.0f} {base:10.0f} {value / base:7.2f}")
    print(f"calls: {args.n} sequential, {args.pipelined} pipelined; value {len(json.dumps(VALUE))} bytes of JSON; "
          f"{KEYS} distinct keys")


if __name__ == "__main__":
    main()
