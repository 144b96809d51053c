"""Measurements on a loaded model, run on the model's own worker thread, and the A/B statistics.

* ``text_nll(llm, tokens, score_from)``: summed negative log-likelihood of ``tokens[i]`` given
  ``tokens[:i]`` for ``i >= score_from``, from the model's logits: the tokens are decoded in batches with
  every position's logits requested (``llama_batch`` with ``logits[i] = 1``; the equivalent of
  ``Llama(..., logits_all=True)`` + ``eval`` without a second copy of the model), then log-softmax per
  row. Texts longer than the context are scored in windows of ``n_ctx`` tokens overlapping by half.
  The KV cache is cleared before and after, so the next generation starts clean.
* ``timed_generation(llm, tokens, max_tokens)``: greedy decoding of exactly ``max_tokens`` tokens (end of
  sequence does not stop it, so the count is fixed) with the time to the first token and the decode
  rate.
* ``sign_test`` (exact two-sided binomial on the non-tied pairs) and ``paired_bootstrap`` (mean
  difference, 95 % percentile interval, two-sided p) for per-prompt A/B scores.
"""
from __future__ import annotations

import math
import time
from typing import Any
from collections.abc import Sequence

import numpy as np


def _llama() -> Any:
    import llama_cpp

    return llama_cpp


def tokenize(llm: Any, text: str, add_bos: bool = True) -> list[int]:
    return list(llm.tokenize(text.encode("utf-8"), add_bos=add_bos, special=False))


def text_nll(llm: Any, tokens: Sequence[int], score_from: int = 1, batch_rows: int = 16) -> tuple[float, int]:
    """(sum of -log p, number of scored tokens) over positions ``max(1, score_from)..len-1``."""
    tokens = list(tokens)
    n_ctx = int(llm.n_ctx())
    total, count = 0.0, 0
    for start, end, first in windows(len(tokens), n_ctx, max(1, score_from)):
        nll, n = _window_nll(llm, tokens[start:end], first - start, batch_rows)
        total += nll
        count += n
    return total, count


def windows(n_tokens: int, n_ctx: int, score_from: int = 1) -> list[tuple[int, int, int]]:
    """(start, end, first scored position) of each window; every position >= score_from scored once."""
    if n_tokens <= score_from:
        return []
    out = []
    stride = max(1, n_ctx // 2)
    start, scored_to = 0, score_from
    while True:
        end = min(start + n_ctx, n_tokens)
        if end > scored_to:
            out.append((start, end, scored_to))
            scored_to = end
        if end >= n_tokens:
            return out
        start = max(start + 1, end - (n_ctx - stride))


def _window_nll(llm: Any, tokens: list[int], score_from: int, batch_rows: int) -> tuple[float, int]:
    llama_cpp = _llama()
    ctx = llm.ctx
    n_vocab = int(llm.n_vocab())
    memory = llama_cpp.llama_get_memory(ctx)
    llama_cpp.llama_memory_clear(memory, True)
    llm.reset()
    rows = max(1, min(int(batch_rows), int(llm.n_batch)))
    batch = llama_cpp.llama_batch_init(rows, 0, 1)
    total, count = 0.0, 0
    inputs = tokens[:-1]                      # the last token predicts nothing we score
    try:
        for start in range(0, len(inputs), rows):
            piece = inputs[start:start + rows]
            _fill(batch, piece, start)
            code = llama_cpp.llama_decode(ctx, batch)
            if code != 0:
                raise RuntimeError(f"llama_decode failed with code {code}")
            logits = np.ctypeslib.as_array(llama_cpp.llama_get_logits(ctx), shape=(len(piece) * n_vocab,))
            logits = logits.reshape(len(piece), n_vocab)
            for i in range(len(piece)):
                target_pos = start + i + 1
                if target_pos < score_from:
                    continue
                row = logits[i].astype(np.float64)
                peak = float(row.max())
                log_z = peak + math.log(float(np.exp(row - peak).sum()))
                total += log_z - float(row[tokens[target_pos]])
                count += 1
    finally:
        llama_cpp.llama_batch_free(batch)
        llama_cpp.llama_memory_clear(memory, True)
        llm.reset()
    return total, count


def _fill(batch: Any, piece: list[int], offset: int) -> None:
    batch.n_tokens = len(piece)
    for i, token in enumerate(piece):
        batch.token[i] = token
        batch.pos[i] = offset + i
        batch.n_seq_id[i] = 1
        batch.seq_id[i][0] = 0
        batch.logits[i] = 1


def timed_generation(llm: Any, tokens: Sequence[int], max_tokens: int) -> dict[str, Any]:
    """Greedy-decode ``max_tokens`` tokens; {ttft_s, decode_s, tokens, tokens_per_s, total_s}."""
    prompt = list(tokens)
    budget = int(llm.n_ctx()) - len(prompt)
    max_tokens = max(1, min(int(max_tokens), budget))
    if budget < 1:
        raise ValueError(f"prompt of {len(prompt)} tokens leaves no room in the {llm.n_ctx()}-token context")
    started = time.perf_counter()
    first_at = None
    produced = 0
    try:
        for _token in llm.generate(list(prompt), temp=0.0, top_k=1, top_p=1.0, min_p=0.0, repeat_penalty=1.0):
            produced += 1
            if first_at is None:
                first_at = time.perf_counter()
            if produced >= max_tokens:
                break
    finally:
        ended = time.perf_counter()
        llm.reset()
    assert first_at is not None
    decode_s = ended - first_at
    rate = (produced - 1) / decode_s if produced > 1 and decode_s > 0 else None
    return {"ttft_s": first_at - started, "decode_s": decode_s, "tokens": produced, "tokens_per_s": rate,
            "total_s": ended - started, "prompt_tokens": len(prompt)}


# --------------------------------------------------------------------------------------- statistics
def sign_test(diffs: Sequence[float], tol: float = 1e-12) -> dict[str, Any]:
    """Exact two-sided sign test of paired differences (ties dropped)."""
    wins = sum(1 for d in diffs if d > tol)
    losses = sum(1 for d in diffs if d < -tol)
    n = wins + losses
    if n == 0:
        return {"wins_a": 0, "wins_b": 0, "ties": len(diffs), "p_value": 1.0}
    k = min(wins, losses)
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2 ** n
    return {"wins_a": wins, "wins_b": losses, "ties": len(diffs) - n, "p_value": min(1.0, 2 * tail)}


def paired_bootstrap(diffs: Sequence[float], samples: int = 2000, seed: int = 0) -> dict[str, Any]:
    """Mean of the paired differences with a 95 % percentile interval and a two-sided bootstrap p."""
    values = np.asarray(list(diffs), dtype=np.float64)
    if values.size == 0:
        return {"mean_diff": None, "ci95": None, "p_value": 1.0, "samples": 0}
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, values.size, size=(samples, values.size))].mean(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    p = 2 * min(float((means <= 0).mean()), float((means >= 0).mean()))
    return {"mean_diff": float(values.mean()), "ci95": [float(low), float(high)], "p_value": min(1.0, p),
            "samples": samples}


def summarise(values: Sequence[float]) -> dict[str, float] | None:
    data = sorted(v for v in values if v is not None and math.isfinite(v))
    if not data:
        return None
    mid = len(data) // 2
    median = data[mid] if len(data) % 2 else (data[mid - 1] + data[mid]) / 2
    return {"mean": sum(data) / len(data), "median": median, "min": data[0], "max": data[-1], "n": len(data)}
