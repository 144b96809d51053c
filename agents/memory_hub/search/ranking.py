"""Hybrid ranking and context packing (pure functions, no I/O)."""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any
from collections.abc import Mapping, Sequence

import numpy as np

_WORDS = re.compile(r"\S+")
_TOKENS = re.compile(r"\w+", re.UNICODE)


@dataclass
class Ranked:
    memory_id: str
    score: float
    vector_score: float | None = None
    keyword_score: float | None = None
    vector_rank: int | None = None        # 1-based rank among the vector hits (None: not among them)


def fuse(vector_hits: Sequence[tuple[str, float]], keyword_hits: Sequence[tuple[str, float]],
         cosines: Mapping[str, float], coverage: Mapping[str, float], *, keyword_weight: float,
         min_coverage: float) -> list[Ranked]:
    """Hybrid ranking: cosine plus a keyword bonus for memories holding most of the query's words.

    ``score = cosine + keyword_weight * gate``, ``gate = (coverage - min_coverage) / (1 - min_coverage)``
    clipped to [0, 1]; ``coverage`` is the share of the query's words a memory holds (missing: 0) and
    ``cosines`` fills the cosine of keyword hits that are not among the vector hits (missing: 0).
    Reciprocal rank fusion was used before: on paraphrased questions it let any memory sharing one word
    outrank the right answer (recall@1 0.71 -> 0.34 on the eval set), BM25 carrying no sense of meaning.
    """
    merged: dict[str, Ranked] = {}
    for rank, (memory_id, score) in enumerate(vector_hits, start=1):
        merged[memory_id] = Ranked(memory_id, 0.0, vector_score=score, vector_rank=rank)
    for memory_id, score in keyword_hits:
        item = merged.setdefault(memory_id, Ranked(memory_id, 0.0, vector_score=cosines.get(memory_id)))
        item.keyword_score = score
    span = max(1e-9, 1.0 - min_coverage)
    for item in merged.values():
        gate = min(1.0, max(0.0, (coverage.get(item.memory_id, 0.0) - min_coverage) / span))
        item.score = (item.vector_score or 0.0) + keyword_weight * gate
    return sorted(merged.values(), key=lambda r: (-r.score, -(r.vector_score or -1.0), r.memory_id))


def coverage(query_terms: Sequence[str], content: str) -> float:
    """Share of ``query_terms`` (lower-case words) among the words of ``content`` (0 for no terms)."""
    if not query_terms:
        return 0.0
    present = set(_TOKENS.findall(content.lower()))
    return sum(1 for term in query_terms if term in present) / len(query_terms)


def single(hits: Sequence[tuple[str, float]], kind: str) -> list[Ranked]:
    """One list as-is; ``kind`` says which score field it fills."""
    out = []
    for rank, (memory_id, score) in enumerate(hits, start=1):
        item = Ranked(memory_id, score)
        setattr(item, f"{kind}_score", score)
        if kind == "vector":
            item.vector_rank = rank
        out.append(item)
    return out


def estimate_tokens(text: str, tokens_per_word: float) -> int:
    """Approximate model tokens of ``text``: ceil(words * tokens_per_word), at least 1."""
    return max(1, math.ceil(len(_WORDS.findall(text)) * tokens_per_word))


def pack(results: list[dict[str, Any]], vectors: dict[str, np.ndarray], *, token_budget: int,
         tokens_per_word: float, duplicate_threshold: float) -> tuple[list[dict[str, Any]], int, int]:
    """Greedy packing in rank order, skipping near-duplicates of what is already packed.

    Returns ``(items, used_tokens, duplicates_dropped)``; an item that does not fit is skipped and
    smaller later ones may still go in.
    """
    items: list[dict[str, Any]] = []
    kept: list[np.ndarray] = []
    seen_text: set[str] = set()
    used = dropped = 0
    for result in results:
        content = str(result["memory"].get("content") or "")
        norm = " ".join(content.lower().split())
        vector = vectors.get(result["memory_id"])
        if norm in seen_text or _near_any(vector, kept, duplicate_threshold):
            dropped += 1
            continue
        tokens = estimate_tokens(content, tokens_per_word)
        if used + tokens > token_budget:
            continue
        used += tokens
        seen_text.add(norm)
        if vector is not None:
            kept.append(vector)
        items.append({**result, "tokens": tokens, "content": content})
    return items, used, dropped


def _near_any(vector: np.ndarray | None, kept: list[np.ndarray], threshold: float) -> bool:
    if vector is None or not kept:
        return False
    return bool(np.max(np.vstack(kept) @ vector) >= threshold)
