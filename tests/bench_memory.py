"""Memory benchmark: MemoryOrchestratorService ``add_memory`` / ``get_memory`` latency (p50/p95/p99) through a
running MemoryHub, on the legacy port 7140 (REQ, JSON, as MemoryClient sent it) and on the native port (REQ,
msgpack, JWT), next to two baselines measured in the same run: the hub's ``ping`` (transport only) and the same
SQL work done in-process (SQLAlchemy on a migrated SQLite file with the hub's pragmas: insert + commit with
``synchronous=FULL``; get = access-count update + commit + row read). Run: ``python -m tests.bench_memory``
(part of ``make bench``). Figures only; nothing is asserted.

Each request is sequential (one in flight), so latency is what one client sees. Every add is a durable,
fsynced transaction; every get counts an access (a write) as the legacy agent did.
"""
from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path
from collections.abc import Callable

import zmq

from agents.memory_hub.memories import Memories
from agents.memory_hub.stores.sql import SqlStore
from tests.support.hubproc import HubProcess

CONTENT = "Ana drinks green tea every morning before work; remind her to buy more on Fridays."


def timed(fn: Callable[[int], object], n: int, warmup: int) -> list[float]:
    for i in range(warmup):
        fn(-1 - i)
    samples = []
    for i in range(n):
        started = time.perf_counter()
        fn(i)
        samples.append(time.perf_counter() - started)
    return samples


def row(name: str, samples: list[float]) -> str:
    ms = sorted(s * 1000 for s in samples)
    pick = lambda q: ms[min(len(ms) - 1, int(q * len(ms)))]   # noqa: E731
    rate = len(ms) / (sum(ms) / 1000)
    return (f"{name:<34} p50 {statistics.median(ms):7.3f} ms   p95 {pick(0.95):7.3f} ms   "
            f"p99 {pick(0.99):7.3f} ms   {rate:8.0f} ops/s")


class LegacyClient:
    """One persistent REQ socket, JSON frames: what MemoryClient kept open to 7140."""

    def __init__(self, endpoint: str):
        self.sock = zmq.Context.instance().socket(zmq.REQ)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.setsockopt(zmq.RCVTIMEO, 30000)
        self.sock.connect(endpoint)

    def __call__(self, action: str, data: dict) -> dict:
        self.sock.send_json({"action": action, "data": data})
        reply = json.loads(self.sock.recv())
        if reply.get("status") != "success":
            raise RuntimeError(reply)
        return reply

    def close(self) -> None:
        self.sock.close()


def bench_hub(n: int, warmup: int, data_dir: Path) -> list[str]:
    lines = []
    with HubProcess("memory_hub", data_dir / "hub") as hub:
        native = hub.client()
        legacy = LegacyClient(f"tcp://127.0.0.1:{hub.port(7140)}")
        lines.append(row("hub ping (native, transport only)", timed(lambda i: native.call("hub", "ping"), n, warmup)))

        ids: list[str] = []
        lines.append(row("legacy add_memory (7140, JSON)", timed(
            lambda i: ids.append(legacy("add_memory", {"content": f"{CONTENT} #{i}", "memory_type": "general",
                                                       "created_by": "bench"})["memory_id"]), n, warmup)))
        lines.append(row("legacy get_memory (7140, JSON)", timed(
            lambda i: legacy("get_memory", {"memory_id": ids[i % len(ids)]}), n, warmup)))

        native_ids: list[str] = []
        lines.append(row("native add_memory (msgpack)", timed(
            lambda i: native_ids.append(native.call("MemoryOrchestratorService", "add_memory",
                                                    {"content": f"{CONTENT} #{i}"})["memory_id"]), n, warmup)))
        lines.append(row("native get_memory (msgpack)", timed(
            lambda i: native.call("MemoryOrchestratorService", "get_memory",
                                  {"memory_id": native_ids[i % len(native_ids)]}), n, warmup)))
        lines.append(row("native get_memory touch=false", timed(
            lambda i: native.call("MemoryOrchestratorService", "get_memory",
                                  {"memory_id": native_ids[i % len(native_ids)], "touch": False}), n, warmup)))
        legacy.close()
        native.close()
    return lines


def bench_sql(n: int, warmup: int, data_dir: Path) -> list[str]:
    store = SqlStore(data_dir=data_dir / "sql")
    store.migrate()
    memories = Memories(store)            # no Redis, no events, no search: the SQL work alone
    ids: list[str] = []
    lines = [row("baseline in-process add (SQL)", timed(
        lambda i: ids.append(memories.add({"content": f"{CONTENT} #{i}"})), n, warmup))]
    lines.append(row("baseline in-process get (SQL)", timed(lambda i: memories.get(ids[i % len(ids)]), n, warmup)))
    store.close()
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("-n", type=int, default=1000, help="timed requests per figure")
    parser.add_argument("--warmup", type=int, default=50)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-memory-") as tmp:
        lines = bench_hub(args.n, args.warmup, Path(tmp)) + bench_sql(args.n, args.warmup, Path(tmp))
    print(f"MemoryOrchestratorService latency, {args.n} sequential requests each (after {args.warmup} warm-up)")
    for line in lines:
        print(line)


if __name__ == "__main__":
    main()
