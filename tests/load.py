"""Load test of MemoryHub: ``python -m tests.load`` (not part of ``make test``; prints figures, asserts none).

50 legacy REQ clients (half on MemoryOrchestratorService 7140: add_memory / get_memory, half on CacheManager
7102: put / get) and 10 native DEALER clients pipelining ``MemoryClient`` kv_set / kv_get (8 in flight each)
run for 60 s against a MemoryHub started for the run (its own data dir, embedded Redis). Each client checks
every reply (a read must return what that client wrote). Printed: throughput, p50/p99 latency per operation,
errors (exit 1 when any), the hub's and its Redis's RSS before and after (exit 1 when the hub grew more
than ``--rss-growth-mb``), the hub's CPU per request and how busy the whole machine was (a run that shared
the cores with other work is slower), and the closed loop's Little's law: the clients keep a fixed number
of requests in flight, so mean latency is that number divided by the throughput. Load runs in two processes
(legacy, native) of one thread each, driving their sockets from a poller, so the generator costs little CPU
next to the hub (2 cores here).

    python -m tests.load --seconds 60 --legacy-clients 50 --native-clients 10 --window 8
    python -m tests.load --seconds 30 --warmup 3 --hub-config '{hub: {workers: 4}, sql: {synchronous: NORMAL}}'
"""
from __future__ import annotations

import argparse
import copy
import multiprocessing
import sys
import tempfile
from pathlib import Path

import psutil
import yaml

from bus.settings import deep_merge
from tests.reliability.loadgen import Report, Sampler, run_drivers, summarize
from tests.support.hubproc import HubProcess

# the load's cache type is not LRU-bounded, so a read may ask for any key its client ever wrote
HUB_CONFIG = {"cache_manager": {"extra_types": {"load": {"ttl_s": 86400, "max_entries": 10_000_000}}}}


def parse_args(argv: list[str] | None = None, seconds: float = 60.0, interval: float = 10.0) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=seconds)
    parser.add_argument("--interval", type=float, default=interval, help="seconds per row of the time table")
    parser.add_argument("--legacy-clients", type=int, default=50)
    parser.add_argument("--native-clients", type=int, default=10)
    parser.add_argument("--window", type=int, default=8, help="requests in flight per native client")
    parser.add_argument("--rss-growth-mb", type=float, default=256.0, help="allowed hub RSS growth")
    parser.add_argument("--data-dir", help="hub data dir (default: a fresh temporary one)")
    parser.add_argument("--warmup", type=float, default=5.0, help="seconds of load before RSS 'before'")
    parser.add_argument("--hub-config", type=yaml.safe_load, default={},
                        help="YAML mapping merged over the hub's settings for the run, e.g. '{hub: {workers: 4}}'")
    return parser.parse_args(argv)


def rss_mb(pid: int | None) -> float:
    try:
        return psutil.Process(pid).memory_info().rss / 2**20 if pid else 0.0
    except psutil.Error:
        return 0.0


def redis_pid(data_dir: Path) -> int | None:
    try:
        return int((data_dir / "redis.pid").read_text().strip())
    except (OSError, ValueError):
        return None


def run(args: argparse.Namespace, title: str) -> int:
    data_dir = Path(args.data_dir) if args.data_dir else Path(tempfile.mkdtemp(prefix="hub-load-")) / "hub"
    config = copy.deepcopy(HUB_CONFIG)
    deep_merge(config, args.hub_config or {})
    hub = HubProcess("memory_hub", data_dir, startup_timeout=120, config=config)
    hub.start()
    try:
        sampler = Sampler(lambda: rss_mb(hub.proc.pid), lambda: rss_mb(redis_pid(data_dir)),
                          lambda: psutil.Process(hub.proc.pid).num_threads(),
                          lambda: sum(psutil.Process(hub.proc.pid).cpu_times()[:2]))
        print(f"{title}: MemoryHub pid {hub.proc.pid}, data dir {data_dir}, {args.legacy_clients} legacy REQ "
              f"clients + {args.native_clients} native DEALER clients x {args.window} in flight, "
              f"{args.seconds:.0f} s (+{args.warmup:.0f} s warm-up), {psutil.cpu_count()} CPUs", flush=True)
        plan = {"offset": hub.offset, "token": hub.token(), "legacy_clients": args.legacy_clients,
                "native_clients": args.native_clients, "window": args.window}
        run_drivers(plan, args.warmup, args.interval, sampler=None)          # model loads, caches warm up
        before = sampler.sample()
        report: Report = run_drivers(plan, args.seconds, args.interval, sampler=sampler)
        after = sampler.sample()
        alive = hub.proc.poll() is None
    finally:
        code = hub.stop()
    print(summarize(report, before, after, args.seconds,
                    outstanding=args.legacy_clients + args.native_clients * args.window))
    failures = []
    if report.errors:
        failures.append(f"{report.errors} errors")
    growth = after.hub_mb - before.hub_mb
    if growth > args.rss_growth_mb:
        failures.append(f"hub RSS grew {growth:.0f} MB > {args.rss_growth_mb:.0f} MB")
    if not alive or code not in (0, None):
        failures.append(f"hub alive={alive} exit={code}")
    command = " ".join(["python -m", f"tests.{title}", *sys.argv[1:]])
    print(f"RESULT: {'FAIL: ' + '; '.join(failures) if failures else 'PASS'} (command: {command})")
    return 1 if failures else 0


def main(argv: list[str] | None = None) -> int:
    return run(parse_args(argv), "load")


if __name__ == "__main__":
    multiprocessing.set_start_method("spawn")
    sys.exit(main())
