"""Rank fusion and context packing (pure functions, no I/O)."""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

_WORDS = re.compile(r"\S+")


@dataclass
class Ranked:
    memory_id: str
    score: float
    vector_score: float | None = None
    keyword_score: float | None = None


def fuse(vector_hits: Sequence[tuple[str, float]], keyword_hits: Sequence[tuple[str, float]], *,
         rrf_k: float, vector_weight: float, keyword_weight: float) -> list[Ranked]:
    """Weighted reciprocal rank fusion: score = sum over lists of weight / (rrf_k + rank), rank from 1."""
    merged: dict[str, Ranked] = {}
    for rank, (memory_id, score) in enumerate(vector_hits, start=1):
        item = merged.setdefault(memory_id, Ranked(memory_id, 0.0))
        item.vector_score = score
        item.score += vector_weight / (rrf_k + rank)
    for rank, (memory_id, score) in enumerate(keyword_hits, start=1):
        item = merged.setdefault(memory_id, Ranked(memory_id, 0.0))
        item.keyword_score = score
        item.score += keyword_weight / (rrf_k + rank)
    return sorted(merged.values(), key=lambda r: (-r.score, -(r.vector_score or -1.0), r.memory_id))


def single(hits: Sequence[tuple[str, float]], kind: str) -> list[Ranked]:
    """One list as-is; ``kind`` says which score field it fills."""
    out = []
    for memory_id, score in hits:
        item = Ranked(memory_id, score)
        setattr(item, f"{kind}_score", score)
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
