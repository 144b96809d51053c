"""Benchmark of the MemoryHub search engine (not a pytest test): ``python -m tests.bench_search``.

For each size (default 10k and 100k synthetic memories from tests/memory_hub/search/corpus.py) on a fresh
SQLite file migrated by Alembic, with the real all-MiniLM-L6-v2 model:

* bulk insert rate: rows inserted in batches, each batch embedded and indexed (``index_many``), wall clock;
* search latency p50/p95/p99 (k=10) for distinct queries, vector and hybrid modes, with the query embedding
  (first time a query is seen) and without it (the same queries again: the embedding comes from the cache);
  plus a filtered query (namespace, 10 % of the rows) and the bare FAISS search;
* recall@10 of the index (HNSW above ``hnsw_threshold``) against exact brute force over all vectors;
* restart time from the snapshot and from SQL (full rebuild).

Goals (issue "fast at 100k memories"): p95 <= 20 ms at 100k including the query embedding, recall@10 >= 0.95,
bulk insert >= 500/s. Options: ``--sizes 10000``, ``--queries 300``, ``--batch 512``, ``--keep DIR``
(``--reuse`` then skips the insert phase of a kept database); ``--full`` adds 100k to both parts.

Quality (tests/data/search_eval.json, tests/memory_hub/search/evalset.py): recall@1/@3/@10 and MRR of the
154 paraphrased questions and the 26 exact-token lookups among ``--quality-sizes`` distractors (default
10k), for vector-only, keyword-only, hybrid (the native UnifiedMemoryReasoningAgent path) and the legacy
MOS ``semantic_search`` path (hybrid + relevance filter). Distractor embeddings are cached in
var/search-eval (the first 100k run embeds them once).
"""
from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any
from collections.abc import Callable

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import numpy as np

from agents.memory_hub.search import Embedder, SearchEngine
from agents.memory_hub.search.settings import SearchSettings
from agents.memory_hub.stores.sql import SqlStore
from tests.data.make_distractors import eval_pairs, lookup_queries
from tests.memory_hub.search.corpus import insert_rows, memory_row, sentences
from tests.memory_hub.search.evalset import EvalCorpus, format_table

QUERY_SEED = 424242
REPO = Path(__file__).resolve().parents[1]
EVAL_CACHE = REPO / "var" / "search-eval"


def percentiles(samples: list[float]) -> dict[str, float]:
    ms = np.asarray(samples) * 1000
    return {"p50": float(np.percentile(ms, 50)), "p95": float(np.percentile(ms, 95)),
            "p99": float(np.percentile(ms, 99)), "mean": float(ms.mean())}


def timed(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def bulk_insert(engine: SearchEngine, store: SqlStore, texts: list[str], batch: int) -> dict[str, float]:
    start = time.perf_counter()
    for offset in range(0, len(texts), batch):
        rows = [memory_row(text, memory_id=f"m{offset + i:07d}", namespace=f"ns{(offset + i) % 10}",
                           session_id=f"s{(offset + i) % 500}")
                for i, text in enumerate(texts[offset:offset + batch])]
        insert_rows(store.engine, rows)
        engine.index_many([(row["memory_id"], row["content"]) for row in rows])
        done = offset + len(rows)
        if done % (batch * 20) == 0 or done == len(texts):
            rate = done / (time.perf_counter() - start)
            print(f"    inserted {done:>7} ({rate:.0f}/s, load {os.getloadavg()[0]:.1f})", flush=True)
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "per_second": len(texts) / seconds}


def latency(engine: SearchEngine, queries: list[str], **kw: Any) -> dict[str, float]:
    return percentiles([timed(lambda q=q: engine.search(q, k=10, **kw)) for q in queries])


def recall(engine: SearchEngine, query_vectors: np.ndarray, k: int = 10) -> float:
    _ids, matrix = engine.rows.subset_embeddings([])
    exact = query_vectors @ matrix.T
    got = 0
    for qi, q in enumerate(query_vectors):
        kth = np.partition(-exact[qi], k - 1)[k - 1] * -1 - 1e-5
        got += sum(1 for _, score in engine.index.search(q, k) if score >= kth)
    return got / (k * len(query_vectors))


def bench_size(n: int, args: argparse.Namespace, embedder: Embedder) -> dict[str, Any]:
    base = Path(args.keep) / f"n{n}" if args.keep else Path(tempfile.mkdtemp(prefix=f"bench-search-{n}-"))
    reuse = args.reuse and (base / "sql").exists()
    if not reuse:
        shutil.rmtree(base, ignore_errors=True)
    store = SqlStore(data_dir=base / "sql")
    store.migrate()
    settings = SearchSettings(maintenance_interval_s=0, snapshot_every=0)
    engine = SearchEngine(store, embedder, settings, data_dir=base / "data")
    engine.start()
    if reuse and len(engine.index) == n:
        print(f"  {n} memories: reusing {base}", flush=True)
        insert = {"seconds": float("nan"), "per_second": float("nan")}
    else:
        print(f"  {n} memories: bulk insert (batches of {args.batch}, embedding included)", flush=True)
        insert = bulk_insert(engine, store, sentences(n, seed=1), args.batch)
    queries = list(dict.fromkeys(sentences(args.queries * 2, seed=QUERY_SEED)))[:args.queries]
    queries = [q.replace(".", "?") for q in queries]
    result: dict[str, Any] = {"n": n, "index": engine.index.stats(), "insert": insert,
                              "backend": embedder.backend_in_use}
    result["vector_cold"] = latency(engine, queries, mode="vector")        # embeds each query
    result["vector_warm"] = latency(engine, queries, mode="vector")        # embedding cached
    fresh = [f"{q} (again)" for q in queries]
    result["hybrid_cold"] = latency(engine, fresh, mode="hybrid")
    result["hybrid_warm"] = latency(engine, fresh, mode="hybrid")
    result["filtered_warm"] = latency(engine, fresh, mode="hybrid", filters={"namespace": "ns3"})
    result["session_warm"] = latency(engine, fresh, mode="hybrid", filters={"session_id": "s42"})
    qv = embedder.encode(queries)
    result["faiss_only"] = percentiles([timed(lambda v=v: engine.index.search(v, 10)) for v in qv])
    result["recall@10"] = recall(engine, qv)
    result["embed_query"] = percentiles([timed(lambda q=q: embedder.encode([q + " ?"])) for q in queries[:100]])
    engine.close()
    result["restart_snapshot_s"] = _restart(store, embedder, settings, base, keep_snapshot=True)
    result["restart_sql_s"] = _restart(store, embedder, settings, base, keep_snapshot=False)
    store.close()
    if not args.keep:
        shutil.rmtree(base, ignore_errors=True)
    return result


def _restart(store: SqlStore, embedder: Embedder, settings: SearchSettings, base: Path,
             keep_snapshot: bool) -> float:
    if not keep_snapshot:
        shutil.rmtree(base / "data" / "search", ignore_errors=True)
    engine = SearchEngine(store, embedder, settings, data_dir=base / "data")
    seconds = timed(engine.start)
    source = engine.maintainer.status["source"]
    engine.close()
    print(f"    restart from {source}: {seconds:.2f} s", flush=True)
    return seconds


def report(results: list[dict[str, Any]]) -> None:
    print("\n== MemoryHub search benchmark ==")
    print(f"cpus={os.cpu_count()} load={os.getloadavg()[0]:.2f} (shared machine: figures are indicative)")
    for r in results:
        print(f"\n-- {r['n']} memories, index {r['index']['kind']} (ef_search={r['index']['ef_search']}), "
              f"embeddings on {r['backend']}")
        print(f"bulk insert incl. embedding: {r['insert']['per_second']:.0f}/s ({r['insert']['seconds']:.1f} s)")
        for key, label in (("vector_cold", "vector search, with query embedding"),
                           ("vector_warm", "vector search, embedding cached"),
                           ("hybrid_cold", "hybrid search, with query embedding"),
                           ("hybrid_warm", "hybrid search, embedding cached"),
                           ("filtered_warm", "hybrid + namespace filter (10%), cached"),
                           ("session_warm", "hybrid + session filter (0.2%), cached"),
                           ("embed_query", "query embedding alone"),
                           ("faiss_only", "FAISS search alone")):
            p = r[key]
            print(f"{label:<44} p50 {p['p50']:6.2f} ms  p95 {p['p95']:6.2f} ms  p99 {p['p99']:6.2f} ms")
        print(f"recall@10 vs exact: {r['recall@10']:.3f}")
        print(f"restart: snapshot {r['restart_snapshot_s']:.2f} s, rebuild from SQL {r['restart_sql_s']:.2f} s")


def bench_backends(torch_model: Embedder, onnx_model: Embedder, queries: list[str]) -> dict[str, Any]:
    """torch vs ONNX Runtime, same model, same run: one query at a time, a 512-text bulk call, agreement."""
    texts = [t for p in eval_pairs() for t in (p["fact"], p["question"])]
    out: dict[str, Any] = {"cosine_min": float(np.min(np.sum(torch_model.encode(texts) * onnx_model.encode(texts),
                                                             axis=1)))}
    bulk = sentences(512, seed=99)
    for name, model in (("torch", torch_model), ("onnx", onnx_model)):
        model.encode(queries[:5])
        single = percentiles([timed(lambda q=q, m=model: m.encode([q])) for q in queries[:150]])
        seconds = min(timed(lambda m=model: m.encode(bulk)) for _ in range(2))
        out[name] = {"single": single, "bulk_per_s": len(bulk) / seconds}
    return out


def report_backends(r: dict[str, Any]) -> None:
    print("\n-- query embedding: torch vs ONNX Runtime (same all-MiniLM-L6-v2, same run)")
    for name in ("torch", "onnx"):
        s = r[name]["single"]
        print(f"{name:<6} one query p50 {s['p50']:6.2f} ms  p95 {s['p95']:6.2f} ms   "
              f"bulk {r[name]['bulk_per_s']:6.0f}/s")
    print(f"ONNX vs torch: p50 x{r['torch']['single']['p50'] / r['onnx']['single']['p50']:.2f}, "
          f"bulk x{r['onnx']['bulk_per_s'] / r['torch']['bulk_per_s']:.2f}; "
          f"cosine min over the eval set's 308 texts {r['cosine_min']:.6f}")


def bench_quality(n: int, embedder: Embedder) -> dict[str, Any]:
    """Recall and MRR of the eval set among ``n`` distractors, every path, plus the hybrid query latency."""
    base = Path(tempfile.mkdtemp(prefix=f"bench-quality-{n}-"))
    try:
        corpus = EvalCorpus.build(base, embedder, n, cache_dir=EVAL_CACHE)
        try:
            paraphrases = corpus.run()
            lookups = corpus.run(lookup_queries())
        finally:
            corpus.close()
    finally:
        shutil.rmtree(base, ignore_errors=True)
    return {"n": n, "backend": embedder.backend_in_use, "paraphrases": paraphrases, "lookups": lookups}


def report_quality(results: list[dict[str, Any]]) -> None:
    for r in results:
        print(f"\n-- search quality ({r['backend']}): 154 paraphrased questions among {r['n']} distractor memories")
        print(format_table(r["paraphrases"]))
        print(f"-- exact-token lookups (codes, names): 26 queries among {r['n']} distractors")
        print(format_table(r["lookups"]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000", help="comma-separated memory counts (latency part)")
    parser.add_argument("--quality-sizes", default="10000", help="comma-separated distractor counts (quality)")
    parser.add_argument("--full", action="store_true", help="add 100000 to --sizes and --quality-sizes")
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--batch", type=int, default=512)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0 = default)")
    parser.add_argument("--keep", default="", help="keep the databases under this directory")
    parser.add_argument("--reuse", action="store_true", help="with --keep: reuse a database of the same size "
                        "(latency and recall only; no insert figure)")
    args = parser.parse_args()
    torch_model = Embedder(threads=args.threads)
    onnx_model = Embedder(threads=args.threads, backend="onnx", cache_dir=EVAL_CACHE / "onnx")
    torch_model.start()
    onnx_model.start()
    queries = [q.replace(".", "?") for q in dict.fromkeys(sentences(400, seed=QUERY_SEED + 1))]
    backends = bench_backends(torch_model, onnx_model, queries) if onnx_model.backend_in_use == "onnx" else None
    if backends:
        report_backends(backends)
    quality = [bench_quality(n, model) for n in _sizes(args.quality_sizes, args.full)
               for model in ([torch_model, onnx_model] if backends else [torch_model])]
    report_quality(quality)
    hub_model = onnx_model if backends else torch_model     # what the hub runs (search.embed_backend)
    results = []
    for size in _sizes(args.sizes, args.full):
        results.append(bench_size(size, args, hub_model))
    torch_model.close()
    onnx_model.close()
    report(results)
    if backends:
        report_backends(backends)
    report_quality(quality)


def _sizes(text: str, full: bool) -> list[int]:
    sizes = [int(s) for s in text.split(",") if s.strip()]
    return sizes + [100000] if full and 100000 not in sizes else sizes


if __name__ == "__main__":
    main()
