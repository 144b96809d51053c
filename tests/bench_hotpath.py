"""Hot-path benchmark: hub reads and cheap actions as ratios of the physical floor measured in the same run.
Run: ``python -m tests.bench_hotpath`` (first in ``make bench``). Figures only; nothing is asserted.

Baselines, same run, same loopback: a raw pyzmq ROUTER echo (sequential REQ and pipelined DEALER) and redis-py
GET on the same redis-server the hub uses (unix socket). The floor of one sequential hub read is one echo round
trip plus one Redis GET: ``floor = 1 / (1/echo_seq + 1/redis_get)`` requests/s.

Load on a shared machine varies within seconds, so every figure is measured in several rounds, each round
taking every baseline and hub figure back to back; a ratio is the median of its per-round ratios.

Hub figures, each with the router thread's CPU per request (it moves far less with the machine's load than
the rates do): ``MemoryClient.kv_get`` and ``CacheManager.get`` (a Lua GET + LRU touch), sequential REQ and
pipelined DEALER with 64 and 200 in flight, on a hub with its defaults (a repeated read is answered from the
copy held in process, kept current by Redis client tracking) and, sequential, on a second hub with those
near copies off (every read asks Redis: the path of a key read for the first time since it changed);
``hub.ping`` pipelined; a handler action through the worker pool with a JWT (``EchoAgent.echo`` on the test
hub) pipelined; MemoryOrchestratorService add/get on the legacy port (REQ, JSON) and native (msgpack) with
p50/p99.
"""
from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import tempfile
import time
from pathlib import Path
from collections.abc import Callable

import msgpack
import redis
import zmq

from agents.memory_hub.stores.embedded_redis import EmbeddedRedis
from tests.bench_bus import pipelined, raw_echo_server, sequential
from tests.bench_kv import hub_pipelined, hub_sequential
from tests.bench_memory import CONTENT, LegacyClient
from tests.support.hubproc import HubProcess, _port_free, free_offset

KEYS = 1000
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
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


def prepare(hub: HubProcess) -> str:
    token = hub.token()
    hub_pipelined(hub.endpoint, [request(token, "MemoryClient", "kv_set", {"key": f"bench:{i}", "value": VALUE}, i)
                                 for i in range(KEYS)], 50)
    hub_pipelined(hub.endpoint, [request(token, "CacheManager", "put", {"cache_type": "bench", "key": f"k{i}",
                                                                        "value": VALUE, "ttl": 3600}, i)
                                 for i in range(KEYS)], 50)
    hub_pipelined(hub.endpoint, kv_gets(token, 2 * KEYS), 50)          # warm up: every key copied to Redis
    hub_pipelined(hub.endpoint, cache_gets(token, 2 * KEYS), 50)
    return token


def router_seconds(hub: HubProcess) -> float:
    """CPU time (user + system) of the hub's router thread so far: the main thread runs ``serve_forever``."""
    assert hub.proc is not None
    fields = Path(f"/proc/{hub.proc.pid}/task/{hub.proc.pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def one_round(echo: str, redis_url: str, hub: HubProcess, token: str, far: HubProcess, far_token: str,
              pool: HubProcess, pool_token: str, n_seq: int, n_pipe: int) -> dict[str, float]:
    """Every baseline and hub figure once, back to back, so that each ratio compares like with like. Hub
    figures also record the router thread's CPU per request (``{figure}_cpu``, microseconds): unlike the
    rates, it barely moves with the other jobs on the machine."""
    ping = msgpack.packb({"v": 1, "id": 1, "agent": "hub", "action": "ping"})
    echo_req = request(pool_token, "EchoAgent", "echo", {"word": "x"})
    out = {"echo_seq": sequential(echo, ping, n_seq), "redis_get": redis_get_rate(redis_url, n_seq)}

    def hub_figure(name: str, target: HubProcess, run: Callable[[], float], count: int) -> None:
        before = router_seconds(target)
        out[name] = run()
        out[f"{name}_cpu"] = (router_seconds(target) - before) / count * 1e6

    hub_figure("kv_seq", hub, lambda: hub_sequential(hub.endpoint, kv_gets(token, n_seq)), n_seq)
    hub_figure("cache_seq", hub, lambda: hub_sequential(hub.endpoint, cache_gets(token, n_seq)), n_seq)
    hub_figure("kv_seq_redis", far, lambda: hub_sequential(far.endpoint, kv_gets(far_token, n_seq)), n_seq)
    hub_figure("cache_seq_redis", far, lambda: hub_sequential(far.endpoint, cache_gets(far_token, n_seq)), n_seq)
    out["echo_pipe"] = pipelined(echo, ping, 2 * n_pipe)
    for window in (64, 200):
        hub_figure(f"kv_pipe_{window}", hub,
                   lambda w=window: hub_pipelined(hub.endpoint, kv_gets(token, n_pipe), w), n_pipe)
        hub_figure(f"cache_pipe_{window}", hub,
                   lambda w=window: hub_pipelined(hub.endpoint, cache_gets(token, n_pipe), w), n_pipe)
    hub_figure("ping_pipe", hub, lambda: pipelined(hub.endpoint, ping, 2 * n_pipe), 2 * n_pipe)
    hub_figure("pool_pipe", pool, lambda: pipelined(pool.endpoint, echo_req, 2 * n_pipe), 2 * n_pipe)
    out["floor"] = 1 / (1 / out["echo_seq"] + 1 / out["redis_get"])
    return out


def mos_latencies(hub: HubProcess, n_lat: int) -> dict[str, list[float]]:
    native = hub.client()
    legacy = LegacyClient(f"tcp://127.0.0.1:{hub.port(7140)}")
    ids: list[str] = []
    nids: list[str] = []
    out = {
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


ROWS = (  # (label, figure, baseline, goal)
    ("MemoryClient.kv_get, sequential REQ", "kv_seq", "floor", 0.8),
    ("CacheManager.get, sequential REQ", "cache_seq", "floor", 0.8),
    ("MemoryClient.kv_get, sequential REQ, near copies off", "kv_seq_redis", "floor", 0.8),
    ("CacheManager.get, sequential REQ, near copies off", "cache_seq_redis", "floor", 0.8),
    ("MemoryClient.kv_get, pipelined DEALER x64", "kv_pipe_64", "echo_pipe", 0.35),
    ("MemoryClient.kv_get, pipelined DEALER x200", "kv_pipe_200", "echo_pipe", 0.35),
    ("CacheManager.get, pipelined DEALER x64", "cache_pipe_64", "echo_pipe", 0.35),
    ("CacheManager.get, pipelined DEALER x200", "cache_pipe_200", "echo_pipe", 0.35),
    ("EchoAgent.echo (worker pool + JWT), pipelined DEALER", "pool_pipe", "echo_pipe", 0.5),
    ("hub.ping, pipelined DEALER", "ping_pipe", "echo_pipe", 0.7),
)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5, help="rounds of every figure (ratios: median of rounds)")
    parser.add_argument("--sequential", type=int, default=1500)
    parser.add_argument("--pipelined", type=int, default=8000)
    parser.add_argument("--latency", type=int, default=500, help="requests per MOS latency figure")
    args = parser.parse_args()
    server, echo = start_echo()
    rounds: list[dict[str, float]] = []
    with tempfile.TemporaryDirectory(prefix="bench-hotpath-") as tmp:
        redis_server = EmbeddedRedis(Path(tmp) / "redis")
        far_redis = EmbeddedRedis(Path(tmp) / "redis-far")       # the second hub's own (same binary, same socket kind)
        url = redis_server.start()
        config = {"storage": {"redis_url": url}, "hub": {"queue_limit": 5000},
                  "cache_manager": {"extra_types": {"bench": {"ttl_s": 3600, "max_entries": 2 * KEYS}}}}
        far_config = {**config, "storage": {"redis_url": far_redis.start()},
                      "memory_client": {"near_cache_bytes": 0},
                      "cache_manager": {**config["cache_manager"], "near_cache_bytes": 0}}
        try:
            with HubProcess("memory_hub", Path(tmp) / "hub", config=config) as hub, \
                    HubProcess("memory_hub", Path(tmp) / "far", config=far_config, offset=free_offset()) as far, \
                    HubProcess("echo_hub", Path(tmp) / "echo", module="tests.bus.echo_hub", offset=free_offset(),
                               config={"hub": {"queue_limit": 5000}}) as pool:
                token, far_token, pool_token = prepare(hub), prepare(far), pool.token()
                for _ in range(args.rounds):
                    rounds.append(one_round(echo, url, hub, token, far, far_token, pool, pool_token,
                                            args.sequential, args.pipelined))
                mos = mos_latencies(hub, args.latency)
        finally:
            far_redis.stop()
            redis_server.stop()
    stop_echo(server, echo)
    med = {k: statistics.median(r[k] for r in rounds) for k in rounds[0]}
    print(f"## Hot path: hub figures as ratios of baselines measured in the same run ({args.rounds} rounds, "
          "each figure next to its baseline; median of the per-round ratios, best round in brackets)")
    print(f"raw ROUTER echo: sequential {med['echo_seq']:.0f}/s ({1e6 / med['echo_seq']:.0f} us), pipelined "
          f"{med['echo_pipe']:.0f}/s; redis-py GET {med['redis_get']:.0f}/s ({1e6 / med['redis_get']:.0f} us); "
          f"floor (echo + GET) {med['floor']:.0f}/s ({1e6 / med['floor']:.0f} us)")
    print(f"{'what':54} {'req/s':>8} {'baseline':>9} {'ratio':>6} {'(best)':>7} {'router us/req':>14}  goal")
    for name, figure, base, goal in ROWS:
        ratios = [r[figure] / r[base] for r in rounds]
        ratio = statistics.median(ratios)
        print(f"{name:54} {med[figure]:8.0f} {med[base]:9.0f} {ratio:6.2f} ({max(ratios):5.2f}) "
              f"{med[figure + '_cpu']:14.1f}  >= {goal} {'met' if ratio >= goal else 'NOT met'}")
    print(f"MemoryOrchestratorService, {args.latency} sequential requests each (REQ):")
    for name, ms in mos.items():
        print(f"  {name:32} p50 {statistics.median(ms):7.3f} ms   p99 {p(ms, 0.99):7.3f} ms")


if __name__ == "__main__":
    main()
