"""Hot-path benchmark: hub reads and cheap actions as ratios of the physical floor measured in the same run.
Run: ``python -m tests.bench_hotpath`` (first in ``make bench``). Figures only; nothing is asserted.

Baselines, same run, same loopback: a raw pyzmq ROUTER echo (sequential REQ and pipelined DEALER) and redis-py
GET on the same redis-server the hub uses (unix socket). The floor of one sequential hub read is one echo round
trip plus one Redis GET: ``floor = 1 / (1/echo_seq + 1/redis_get)`` requests/s.

Hub figures: ``MemoryClient.kv_get`` (a key/value read served from the Redis copy) and ``CacheManager.get``
(a Lua GET + LRU touch), sequential REQ and pipelined DEALER with 64 and 200 in flight; ``hub.ping`` pipelined;
a handler action through the worker pool with a JWT (``EchoAgent.echo`` on the test hub) pipelined;
MemoryOrchestratorService add/get on the legacy port (REQ, JSON) and native (msgpack) with p50/p99.
"""
from __future__ import annotations

import argparse
import multiprocessing
import statistics
import tempfile
import time
from pathlib import Path
from typing import Callable

import msgpack
import redis
import zmq

from agents.memory_hub.stores.embedded_redis import EmbeddedRedis
from tests.bench_bus import pipelined, raw_echo_server, sequential
from tests.bench_kv import hub_pipelined, hub_sequential
from tests.bench_memory import CONTENT, LegacyClient
from tests.support.hubproc import HubProcess, _port_free, free_offset

KEYS = 1000
VALUE = {"intent": "weather", "slots": {"city": "Cebu"}, "confidence": 0.93}


def request(token: str, agent: str, action: str, args: dict, i: int = 0) -> bytes:
    return msgpack.packb({"v": 1, "id": i, "agent": agent, "action": action, "args": args, "token": token})


def kv_gets(token: str, n: int) -> list[bytes]:
    return [request(token, "MemoryClient", "kv_get", {"key": f"bench:{i % KEYS}"}, i) for i in range(n)]


def cache_gets(token: str, n: int) -> list[bytes]:
    return [request(token, "CacheManager", "get", {"cache_type": "bench", "key": f"k{i % KEYS}"}, i)
            for i in range(n)]


def redis_get_rate(url: str, n: int) -> float:
    client = redis.Redis.from_url(url)
    client.set("bench:floor", b"x" * 64)
    started = time.perf_counter()
    for _ in range(n):
        client.get("bench:floor")
    rate = n / (time.perf_counter() - started)
    client.close()
    return rate


def latencies(fn: Callable[[int], object], n: int, warmup: int = 30) -> list[float]:
    for i in range(warmup):
        fn(-1 - i)
    out = []
    for i in range(n):
        started = time.perf_counter()
        fn(i)
        out.append((time.perf_counter() - started) * 1000)
    return sorted(out)


def p(ms: list[float], q: float) -> float:
    return ms[min(len(ms) - 1, int(q * len(ms)))]


def start_echo() -> tuple[multiprocessing.Process, str]:
    port = next(p for p in range(39000, 39999) if _port_free(p))
    ready = multiprocessing.Event()
    server = multiprocessing.Process(target=raw_echo_server, args=(port, ready), daemon=True)
    server.start()
    ready.wait(10)
    return server, f"tcp://127.0.0.1:{port}"


def stop_echo(server: multiprocessing.Process, endpoint: str) -> None:
    stop = zmq.Context.instance().socket(zmq.DEALER)
    stop.connect(endpoint)
    stop.send_multipart([b"", b"STOP"])
    server.join(5)
    stop.close(linger=0)


def memory_hub_figures(url: str, data_dir: Path, n_seq: int, n_pipe: int, n_lat: int) -> dict:
    config = {"storage": {"redis_url": url}, "hub": {"queue_limit": 5000},
              "cache_manager": {"extra_types": {"bench": {"ttl_s": 3600, "max_entries": 2 * KEYS}}}}
    out: dict = {}
    with HubProcess("memory_hub", data_dir, config=config) as hub:
        token = hub.token()
        ping = msgpack.packb({"v": 1, "id": 1, "agent": "hub", "action": "ping"})
        hub_pipelined(hub.endpoint, [request(token, "MemoryClient", "kv_set", {"key": f"bench:{i}", "value": VALUE}, i)
                                     for i in range(KEYS)], 50)
        hub_pipelined(hub.endpoint, [request(token, "CacheManager", "put", {"cache_type": "bench", "key": f"k{i}",
                                                                            "value": VALUE, "ttl": 3600}, i)
                                     for i in range(KEYS)], 50)
        hub_pipelined(hub.endpoint, kv_gets(token, 2 * KEYS), 50)          # warm up: every key copied to Redis
        out["kv_seq"] = hub_sequential(hub.endpoint, kv_gets(token, n_seq))
        out["cache_seq"] = hub_sequential(hub.endpoint, cache_gets(token, n_seq))
        for window in (64, 200):
            out[f"kv_pipe_{window}"] = hub_pipelined(hub.endpoint, kv_gets(token, n_pipe), window)
            out[f"cache_pipe_{window}"] = hub_pipelined(hub.endpoint, cache_gets(token, n_pipe), window)
        out["ping_pipe"] = pipelined(hub.endpoint, ping, 3 * n_pipe)
        native = hub.client()
        legacy = LegacyClient(f"tcp://127.0.0.1:{hub.port(7140)}")
        ids: list[str] = []
        nids: list[str] = []
        out["mos"] = {
            "legacy add_memory": latencies(lambda i: ids.append(legacy("add_memory", {
                "content": f"{CONTENT} #{i}", "memory_type": "general"})["memory_id"]), n_lat),
            "legacy get_memory": latencies(lambda i: legacy("get_memory", {"memory_id": ids[i % len(ids)]}), n_lat),
            "native add_memory": latencies(lambda i: nids.append(native.call(
                "MemoryOrchestratorService", "add_memory", {"content": f"{CONTENT} #{i}"})["memory_id"]), n_lat),
            "native get_memory": latencies(lambda i: native.call(
                "MemoryOrchestratorService", "get_memory", {"memory_id": nids[i % len(nids)]}), n_lat),
            "native get_memory touch=false": latencies(lambda i: native.call(
                "MemoryOrchestratorService", "get_memory", {"memory_id": nids[i % len(nids)], "touch": False}), n_lat),
        }
        legacy.close()
        native.close()
    return out


def pool_action_rate(data_dir: Path, n_pipe: int) -> float:
    with HubProcess("echo_hub", data_dir, module="tests.bus.echo_hub", offset=free_offset(),
                    config={"hub": {"queue_limit": 5000}}) as hub:
        echo = request(hub.token(), "EchoAgent", "echo", {"word": "x"})
        pipelined(hub.endpoint, echo, 2000)
        return pipelined(hub.endpoint, echo, n_pipe)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sequential", type=int, default=4000)
    parser.add_argument("--pipelined", type=int, default=20000)
    parser.add_argument("--latency", type=int, default=500, help="requests per MOS latency figure")
    args = parser.parse_args()
    ping = msgpack.packb({"v": 1, "id": 1, "agent": "hub", "action": "ping"})
    server, endpoint = start_echo()
    echo_seq = sequential(endpoint, ping, args.sequential)
    echo_pipe = pipelined(endpoint, ping, 3 * args.pipelined)
    with tempfile.TemporaryDirectory(prefix="bench-hotpath-") as tmp:
        redis_server = EmbeddedRedis(Path(tmp) / "redis")
        url = redis_server.start()
        try:
            redis_get = redis_get_rate(url, args.sequential)
            hub = memory_hub_figures(url, Path(tmp) / "hub", args.sequential, args.pipelined, args.latency)
        finally:
            redis_server.stop()
        pool = pool_action_rate(Path(tmp) / "echo", 2 * args.pipelined)
    stop_echo(server, endpoint)
    floor = 1 / (1 / echo_seq + 1 / redis_get)
    print("## Hot path: hub figures as ratios of baselines measured in this run")
    print(f"raw ROUTER echo: sequential {echo_seq:.0f}/s ({1e6 / echo_seq:.0f} us), pipelined {echo_pipe:.0f}/s; "
          f"redis-py GET {redis_get:.0f}/s ({1e6 / redis_get:.0f} us); floor (echo + GET) {floor:.0f}/s "
          f"({1e6 / floor:.0f} us)")
    print(f"{'what':58} {'req/s':>9} {'baseline':>9} {'ratio':>6}  goal")
    rows = [
        ("MemoryClient.kv_get, sequential REQ", hub["kv_seq"], floor, 0.8),
        ("CacheManager.get, sequential REQ", hub["cache_seq"], floor, 0.8),
        ("MemoryClient.kv_get, pipelined DEALER x64", hub["kv_pipe_64"], echo_pipe, 0.35),
        ("MemoryClient.kv_get, pipelined DEALER x200", hub["kv_pipe_200"], echo_pipe, 0.35),
        ("CacheManager.get, pipelined DEALER x64", hub["cache_pipe_64"], echo_pipe, 0.35),
        ("CacheManager.get, pipelined DEALER x200", hub["cache_pipe_200"], echo_pipe, 0.35),
        ("EchoAgent.echo (worker pool + JWT), pipelined DEALER", pool, echo_pipe, 0.5),
        ("hub.ping, pipelined DEALER", hub["ping_pipe"], echo_pipe, 0.7),
    ]
    for name, value, base, goal in rows:
        ratio = value / base
        print(f"{name:58} {value:9.0f} {base:9.0f} {ratio:6.2f}  >= {goal} {'met' if ratio >= goal else 'NOT met'}")
    print(f"MemoryOrchestratorService, {args.latency} sequential requests each (REQ):")
    for name, ms in hub["mos"].items():
        print(f"  {name:32} p50 {statistics.median(ms):7.3f} ms   p99 {p(ms, 0.99):7.3f} ms")


if __name__ == "__main__":
    main()
