"""Both SQL backends in one run: MemoryHub on SQLite and on PostgreSQL 15 at 10k memories (``make bench``).

``python -m tests.bench_backends [--size 10000] [-n 300]``. The 10k synthetic memories
(``tests/memory_hub/search/corpus.py``) are embedded once, then written with their embeddings into a fresh
SQLite file and into a fresh database of a private PostgreSQL cluster (``tests/support/postgres.py``, run with
its production defaults: ``fsync=on``, ``synchronous_commit=on``, so a commit is durable as SQLite's
``synchronous=FULL`` one is). A MemoryHub is started on each (``DATABASE_URL``), as users do, and measured
through the native msgpack port, one request in flight:

* ``add_memory``: p50/p95 (a durable write: the row, its embedding, the FAISS add);
* ``semantic_search`` (hybrid: vectors + the backend's keyword engine, fused), distinct queries: p50/p95;
* ``search_memory`` (the legacy substring search): p50/p95;
* PostgreSQL only, replication lag: a second hub (replica B) on the same database; a memory added through
  A, then B's *vector* search (B's own FAISS index, fed by the change feed) polled until it finds it: p50/p95.

Figures only (shared machine: indicative); nothing is asserted. Without PostgreSQL binaries the
PostgreSQL half is reported as skipped, with the reason.
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any
from collections.abc import Callable

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from sqlalchemy import create_engine

from agents.memory_hub.search import Embedder
from agents.memory_hub.search.rows import to_blob
from agents.memory_hub.stores.sql_models import Memory
from migrations.runner import upgrade_to_head
from tests.memory_hub.search.corpus import memory_row, sentences
from tests.support.hubproc import HubProcess
from tests.support.postgres import PostgresCluster, missing_reason

QUERY_SEED = 515151
CONTENT = "Ana drinks green tea every morning before work; remind her to buy more on Fridays."


def corpus(size: int) -> list[dict[str, Any]]:
    """``size`` memory rows with their embeddings (computed once, shared by both backends)."""
    texts = sentences(size, seed=1)
    embedder = Embedder()
    embedder.start()
    try:
        started = time.perf_counter()
        vectors = embedder.encode(texts)
        print(f"  embedded {size} memories in {time.perf_counter() - started:.1f} s", flush=True)
    finally:
        embedder.close()
    rows = []
    for i, (text, vector) in enumerate(zip(texts, vectors, strict=True)):
        row = memory_row(text, memory_id=f"m{i:07d}", namespace=f"ns{i % 10}", session_id=f"s{i % 500}")
        row["embedding"] = to_blob(vector)
        rows.append(row)
    return rows


def load(url: str, rows: list[dict[str, Any]]) -> float:
    """Migrate ``url`` and insert ``rows``; returns the seconds the insert took."""
    upgrade_to_head(url, "memory_hub")
    engine = create_engine(url)
    try:
        started = time.perf_counter()
        with engine.begin() as conn:
            for offset in range(0, len(rows), 1000):
                conn.execute(Memory.__table__.insert(), rows[offset:offset + 1000])
        return time.perf_counter() - started
    finally:
        engine.dispose()


def percentiles(fn: Callable[[int], object], n: int, warmup: int = 20) -> dict[str, float]:
    for i in range(warmup):
        fn(-1 - i)
    samples = []
    for i in range(n):
        started = time.perf_counter()
        fn(i)
        samples.append((time.perf_counter() - started) * 1000)
    ordered = sorted(samples)
    return {"p50": statistics.median(ordered), "p95": ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))]}


def replication_lag(a: HubProcess, b: HubProcess, samples: int) -> dict[str, float]:
    """Seconds from add_memory on A returning to B's vector search finding the memory, in ms."""
    lags = []
    with a.client(timeout=60) as ca, b.client(timeout=60) as cb:
        for i in range(samples):
            text = f"Replica probe {i}: the {['red', 'green', 'blue'][i % 3]} kettle number {i * 7919} is in shed {i}."
            memory_id = ca.call("MemoryOrchestratorService", "add_memory", {"content": text})["memory_id"]
            written = time.perf_counter()
            while True:
                reply = cb.call("UnifiedMemoryReasoningAgent", "semantic_search",
                                {"query": text, "k": 3, "mode": "vector"})
                if any(r["memory_id"] == memory_id for r in reply["results"]):
                    break
                if time.perf_counter() - written > 30:
                    raise RuntimeError(f"replica B never found {memory_id}")
            lags.append((time.perf_counter() - written) * 1000)
    ordered = sorted(lags)
    return {"p50": statistics.median(ordered), "p95": ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))]}


def bench_hub(name: str, url: str, data_dir: Path, n: int, replica: bool = False) -> dict[str, Any]:
    queries = [q.replace(".", "?") for q in dict.fromkeys(sentences(n * 3, seed=QUERY_SEED))][:n + 20]
    with HubProcess("memory_hub", data_dir, env={"DATABASE_URL": url}, startup_timeout=300) as hub, \
            hub.client(timeout=60) as client:
        health = client.call("hub", "health")["checks"]["search"]["detail"]
        result = {"backend": name, "vectors": health.get("vectors"), "fts": health.get("fts")}
        result["add"] = percentiles(lambda i: client.call("MemoryOrchestratorService", "add_memory",
                                                          {"content": f"{CONTENT} #{i}"}), n)
        result["search"] = percentiles(lambda i: client.call("MemoryOrchestratorService", "semantic_search",
                                                             {"query": queries[i], "k": 10}), n)
        result["text"] = percentiles(lambda i: client.call("MemoryOrchestratorService", "search_memory",
                                                           {"query": "green tea", "limit": 10}), n)
        if replica:
            with HubProcess("memory_hub", data_dir.with_name(data_dir.name + "-b"), env={"DATABASE_URL": url},
                            startup_timeout=300) as second:
                result["lag"] = replication_lag(hub, second, 50)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=10000, help="memories in each database")
    parser.add_argument("-n", type=int, default=300, help="timed requests per figure")
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="bench-backends-"))
    cluster: PostgresCluster | None = None
    results: list[dict[str, Any]] = []
    skipped = missing_reason()
    try:
        rows = corpus(args.size)
        sqlite_url = f"sqlite:///{base / 'sqlite' / 'memory_hub.db'}"
        print(f"  sqlite: inserted {args.size} rows in {load(sqlite_url, rows):.1f} s", flush=True)
        results.append(bench_hub("sqlite", sqlite_url, base / "sqlite", args.n))
        if skipped is None:
            cluster = PostgresCluster.start_new(fsync=True, prefix="bench-pg-")
            pg_url = cluster.create_database("bench")
            print(f"  postgresql: inserted {args.size} rows in {load(pg_url, rows):.1f} s", flush=True)
            results.append(bench_hub("postgresql", pg_url, base / "postgresql", args.n, replica=True))
    finally:
        if cluster is not None:
            cluster.stop()
        shutil.rmtree(base, ignore_errors=True)
    print(f"\n== MemoryHub on both SQL backends: {args.size} memories, {args.n} sequential native requests each ==")
    print(f"cpus={os.cpu_count()} load={os.getloadavg()[0]:.2f} (shared machine: figures are indicative)")
    print(f"{'backend':<11} {'keyword':<9} {'add p50':>9} {'add p95':>9} {'search p50':>11} {'search p95':>11} "
          f"{'text p50':>9} {'text p95':>9}")
    for r in results:
        print(f"{r['backend']:<11} {r['fts']:<9} {r['add']['p50']:7.2f}ms {r['add']['p95']:7.2f}ms "
              f"{r['search']['p50']:9.2f}ms {r['search']['p95']:9.2f}ms {r['text']['p50']:7.2f}ms "
              f"{r['text']['p95']:7.2f}ms")
    for r in results:
        if "lag" in r:
            print(f"replication lag, add on replica A -> vector hit on replica B ({r['backend']}, 50 writes): "
                  f"p50 {r['lag']['p50']:.1f} ms, p95 {r['lag']['p95']:.1f} ms")
    if skipped:
        print(f"postgresql  skipped: {skipped}")


if __name__ == "__main__":
    main()
