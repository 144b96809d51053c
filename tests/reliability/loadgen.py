"""Traffic generator of ``tests.load`` and ``tests.soak``: two driver processes, one poller thread each.

* legacy driver: N REQ sockets, half on MemoryOrchestratorService (7140: add_memory, get_memory of an id it
  added), half on CacheManager (7102: put, get of a key it put); one request in flight per socket.
* native driver: M DEALER sockets on the native port, ``window`` requests in flight each: MemoryClient
  kv_set and kv_get of a key it set.

Every reply is checked (a read returns exactly what that client wrote); anything else counts as an error, with
a few samples kept. Drivers report each ``interval`` (latencies per operation, errors) through a queue; the
parent merges the two streams into rows, optionally sampling RSS per row (``Sampler``).
"""
from __future__ import annotations

import json
import multiprocessing
import queue as queue_module
import random
import time
from dataclasses import dataclass, field
from typing import Any
from collections.abc import Callable

import msgpack
import numpy as np
import psutil
import zmq

WRITE_SHARE = 0.5
DRAIN_S = 30.0


# ---------------------------------------------------------------------------------------- recording
class Recorder:
    def __init__(self, name: str, out: Any, interval: float):
        self.name, self.out, self.interval = name, out, interval
        self.started = time.monotonic()
        self.index = 0
        self._reset()

    def _reset(self) -> None:
        self.latencies: dict[str, list[float]] = {}
        self.errors: dict[str, int] = {}
        self.samples: list[str] = []

    def ok(self, op: str, seconds: float) -> None:
        self.latencies.setdefault(op, []).append(seconds)

    def error(self, op: str, detail: Any) -> None:
        self.errors[op] = self.errors.get(op, 0) + 1
        if len(self.samples) < 5:
            self.samples.append(f"{op}: {str(detail)[:200]}")

    def tick(self, final: bool = False) -> None:
        due = self.started + (self.index + 1) * self.interval
        if final or time.monotonic() >= due:
            self.out.put(("row", self.name, self.index, self.latencies, self.errors, self.samples))
            self._reset()
            self.index += 1


# ---------------------------------------------------------------------------------------- legacy driver
class LegacyClient:
    def __init__(self, ctx: zmq.Context, endpoint: str, kind: str, n: int):
        self.sock = ctx.socket(zmq.REQ)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.connect(endpoint)
        self.kind, self.n, self.seq = kind, n, 0
        self.written: list[tuple[str, Any]] = []
        self.pending: tuple[str, float, Any] | None = None

    def send_next(self, rng: random.Random) -> None:
        self.seq += 1
        write = not self.written or rng.random() < WRITE_SHARE
        if self.kind == "mos":
            if write:
                content = f"load client {self.n} memory {self.seq} " + "lorem ipsum " * 4
                request, op, expected = {"action": "add_memory", "data": {"content": content}}, "mos.add", content
            else:
                memory_id, content = rng.choice(self.written)
                request, op, expected = {"action": "get_memory", "data": {"memory_id": memory_id}}, "mos.get", \
                    (memory_id, content)
        else:
            if write:
                key, value = f"c{self.n}-{self.seq}", {"n": self.n, "seq": self.seq, "pad": "x" * 64}
                request, op, expected = {"action": "put", "cache_type": "load", "key": key, "value": value}, \
                    "cache.put", (key, value)
            else:
                key, value = rng.choice(self.written)
                request, op, expected = {"action": "get", "cache_type": "load", "key": key}, "cache.get", value
        self.pending = (op, time.perf_counter(), expected)
        self.sock.send(json.dumps(request).encode())

    def take_reply(self, rec: Recorder) -> None:
        op, started, expected = self.pending
        self.pending = None
        reply = json.loads(self.sock.recv())
        elapsed = time.perf_counter() - started
        good = reply.get("status") == "success"
        if good and op == "mos.add":
            self.written.append((reply["memory_id"], expected))
        elif good and op == "mos.get":
            good = reply["memory"]["memory_id"] == expected[0] and reply["memory"]["content"] == expected[1]
        elif good and op == "cache.put":
            self.written.append(expected)
        elif good and op == "cache.get":
            good = reply.get("data") == expected
        rec.ok(op, elapsed) if good else rec.error(op, reply)


def legacy_driver(plan: dict, seconds: float, interval: float, out: Any) -> None:
    ctx, rng = zmq.Context(), random.Random(1)
    rec = Recorder("legacy", out, interval)
    count = plan["legacy_clients"]
    clients = [LegacyClient(ctx, f"tcp://127.0.0.1:{(7140 if i % 2 == 0 else 7102) + plan['offset']}",
                            "mos" if i % 2 == 0 else "cache", i) for i in range(count)]
    by_socket = {c.sock: c for c in clients}
    poller = zmq.Poller()
    for client in clients:
        poller.register(client.sock, zmq.POLLIN)
        client.send_next(rng)
    end = time.monotonic() + seconds
    while time.monotonic() < end + DRAIN_S and any(c.pending for c in clients):
        for sock, _ in poller.poll(100):
            client = by_socket[sock]
            client.take_reply(rec)
            if time.monotonic() < end:
                client.send_next(rng)
        if time.monotonic() < end:
            rec.tick()
    for client in clients:
        if client.pending:
            rec.error(client.pending[0], "no reply")
        client.sock.close(linger=0)
    rec.tick(final=True)
    out.put(("done", "legacy"))


# ---------------------------------------------------------------------------------------- native driver
class NativeClient:
    def __init__(self, ctx: zmq.Context, endpoint: str, token: str, n: int):
        self.sock = ctx.socket(zmq.DEALER)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.connect(endpoint)
        self.token, self.n, self.seq = token, n, 0
        self.written: list[tuple[str, Any]] = []
        self.pending: dict[int, tuple[str, float, Any]] = {}

    def send_next(self, rng: random.Random) -> None:
        self.seq += 1
        if not self.written or rng.random() < WRITE_SHARE:
            key, value = f"load:{self.n}:{self.seq}", {"n": self.n, "seq": self.seq, "pad": "y" * 64}
            action, args, op, expected = "kv_set", {"key": key, "value": value}, "kv.set", (key, value)
        else:
            key, value = rng.choice(self.written)
            action, args, op, expected = "kv_get", {"key": key}, "kv.get", value
        payload = {"v": 1, "id": self.seq, "agent": "MemoryClient", "action": action, "args": args,
                   "token": self.token}
        self.pending[self.seq] = (op, time.perf_counter(), expected)
        self.sock.send_multipart([b"", msgpack.packb(payload, use_bin_type=True)])

    def take_reply(self, rec: Recorder) -> None:
        reply = msgpack.unpackb(self.sock.recv_multipart()[-1], raw=False)
        entry = self.pending.pop(reply.get("id"), None)
        if entry is None:
            rec.error("native", f"reply to an unknown id: {reply}")
            return
        op, started, expected = entry
        elapsed = time.perf_counter() - started
        good = bool(reply.get("ok"))
        if good and op == "kv.set":
            self.written.append(expected)
        elif good and op == "kv.get":
            good = reply["result"]["value"] == expected
        rec.ok(op, elapsed) if good else rec.error(op, reply)


def native_driver(plan: dict, seconds: float, interval: float, out: Any) -> None:
    ctx, rng = zmq.Context(), random.Random(2)
    rec = Recorder("native", out, interval)
    endpoint = f"tcp://127.0.0.1:{7010 + plan['offset']}"
    clients = [NativeClient(ctx, endpoint, plan["token"], i) for i in range(plan["native_clients"])]
    by_socket = {c.sock: c for c in clients}
    poller = zmq.Poller()
    for client in clients:
        poller.register(client.sock, zmq.POLLIN)
        for _ in range(plan["window"]):
            client.send_next(rng)
    end = time.monotonic() + seconds
    while time.monotonic() < end + DRAIN_S and any(c.pending for c in clients):
        for sock, _ in poller.poll(100):
            client = by_socket[sock]
            while sock.poll(0, zmq.POLLIN):
                client.take_reply(rec)
                if time.monotonic() < end:
                    client.send_next(rng)
        if time.monotonic() < end:
            rec.tick()
    for client in clients:
        for op, _, _ in client.pending.values():
            rec.error(op, "no reply")
        client.sock.close(linger=0)
    rec.tick(final=True)
    out.put(("done", "native"))


# ---------------------------------------------------------------------------------------- parent side
def machine_busy_seconds() -> float:
    """CPU seconds every process of the machine has used (other people's benchmarks included)."""
    times = psutil.cpu_times()
    return sum(times) - times.idle - getattr(times, "iowait", 0.0) - getattr(times, "guest", 0.0) \
        - getattr(times, "guest_nice", 0.0)


@dataclass
class Sample:
    hub_mb: float
    redis_mb: float
    threads: int
    hub_cpu_s: float
    at: float = field(default_factory=time.monotonic)
    machine_busy_s: float = field(default_factory=machine_busy_seconds)


@dataclass
class Sampler:
    hub_rss: Callable[[], float]
    redis_rss: Callable[[], float]
    threads: Callable[[], int]
    hub_cpu: Callable[[], float]

    def sample(self) -> Sample:
        return Sample(self.hub_rss(), self.redis_rss(), self.threads(), self.hub_cpu())


@dataclass
class Report:
    latencies: dict[str, list[float]] = field(default_factory=dict)
    errors: int = 0
    samples: list[str] = field(default_factory=list)
    rows: list[str] = field(default_factory=list)


ROW_HEADER = f"{'t (s)':>7} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7} {'hub MB':>8} " \
             f"{'redis MB':>9} {'threads':>8}"


def run_drivers(plan: dict, seconds: float, interval: float, sampler: Sampler | None) -> Report:
    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    procs = [ctx.Process(target=fn, args=(plan, seconds, interval, out), daemon=True)
             for fn in (legacy_driver, native_driver)]
    for proc in procs:
        proc.start()
    report, pending_rows, done = Report(), {}, set()
    if sampler:
        print(ROW_HEADER, flush=True)
    while len(done) < len(procs):
        try:
            message = out.get(timeout=seconds + DRAIN_S + 60)
        except queue_module.Empty:
            report.errors += 1
            report.samples.append("a driver process stopped reporting")
            break
        if message[0] == "done":
            done.add(message[1])
            continue
        _, name, index, latencies, errors, samples = message
        merge(report, latencies, errors, samples)
        row = pending_rows.setdefault(index, {})
        row[name] = (latencies, errors)
        if len(row) == len(procs):
            emit_row(report, index, interval, seconds, pending_rows.pop(index), sampler)
    for index in sorted(pending_rows):
        emit_row(report, index, interval, seconds, pending_rows.pop(index), sampler)
    for proc in procs:
        proc.join(30)
    return report


def merge(report: Report, latencies: dict, errors: dict, samples: list[str]) -> None:
    for op, values in latencies.items():
        report.latencies.setdefault(op, []).extend(values)
    report.errors += sum(errors.values())
    report.samples.extend(samples[: max(0, 10 - len(report.samples))])


def emit_row(report: Report, index: int, interval: float, seconds: float, parts: dict,
             sampler: Sampler | None) -> None:
    """One line per interval; the replies that came after the end (drain) get a line of their own."""
    values = [v for latencies, _ in parts.values() for vs in latencies.values() for v in vs]
    errors = sum(n for _, errs in parts.values() for n in errs.values())
    p50, p99 = (np.percentile(values, [50, 99]) * 1000) if values else (0.0, 0.0)
    drain = index * interval >= seconds - 1e-6
    label, rate = ("drain", f"{len(values)} req") if drain else (f"{(index + 1) * interval:.0f}",
                                                                 f"{len(values) / interval:.0f}")
    line = f"{label:>7} {rate:>8} {p50:>8.2f} {p99:>8.2f} {errors:>7}"
    if sampler:
        s = sampler.sample()
        line += f" {s.hub_mb:>8.0f} {s.redis_mb:>9.1f} {s.threads:>8}"
        print(line, flush=True)
    report.rows.append(line)


def summarize(report: Report, before: Sample, after: Sample, seconds: float, outstanding: int = 0) -> str:
    """The table per operation, errors, RSS and CPU; ``outstanding``: requests the clients keep in flight."""
    lines = ["", f"{'operation':<10} {'requests':>9} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}"]
    everything: list[float] = []
    for op in sorted(report.latencies):
        values = report.latencies[op]
        everything.extend(values)
        lines.append(_stat_line(op, values, seconds))
    lines.append(_stat_line("total", everything, seconds))
    lines.append(f"errors: {report.errors}" + (f"  e.g. {report.samples[:3]}" if report.samples else ""))
    lines.append(f"hub RSS: {before.hub_mb:.0f} MB before, {after.hub_mb:.0f} MB after "
                 f"({after.hub_mb - before.hub_mb:+.0f} MB); redis-server RSS: {before.redis_mb:.1f} -> "
                 f"{after.redis_mb:.1f} MB; hub threads {before.threads} -> {after.threads}")
    wall = max(1e-9, after.at - before.at)
    busy = (after.hub_cpu_s - before.hub_cpu_s) / wall
    machine = (after.machine_busy_s - before.machine_busy_s) / wall
    per_request = (after.hub_cpu_s - before.hub_cpu_s) * 1000 / max(1, len(everything))
    lines.append(f"hub CPU: {busy:.2f} cores on average over the run ({per_request:.2f} ms per request); "
                 f"the machine: {machine:.2f} of {psutil.cpu_count()} cores busy")
    if outstanding and everything:
        # Little's law: a closed loop keeps `outstanding` requests in the hub, so mean latency = that / rate
        rate = len(everything) / seconds
        lines.append(f"closed loop: {outstanding} requests in flight at all times, so mean latency = "
                     f"{outstanding} / {rate:.0f} req/s = {outstanding / rate * 1000:.0f} ms "
                     f"(measured mean {np.mean(everything) * 1000:.0f} ms): latency falls only as throughput rises")
    return "\n".join(lines)


def _stat_line(op: str, values: list[float], seconds: float) -> str:
    if not values:
        return f"{op:<10} {0:>9}"
    p50, p99, top = np.percentile(values, [50, 99, 100]) * 1000
    return f"{op:<10} {len(values):>9} {len(values) / seconds:>8.0f} {p50:>8.2f} {p99:>8.2f} {top:>8.1f}"
