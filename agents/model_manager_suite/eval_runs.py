"""What one evaluation job does with its model(s), and how a finished job feeds the trust score.

* ``run_single``: perplexity over a text set (from the model's logits, ``eval_measure.text_nll``), then
  time to first token and tokens/s over a prompt set (``eval_measure.timed_generation``).
* ``run_ab``: both models score the same prompts: per prompt, the log-likelihood per byte of the
  reference continuation given the prompt (or of the prompt text itself when there is no reference;
  per byte, so models with different tokenizers compare fairly); the difference per prompt is tested
  with an exact sign test (the verdict, at ``alpha``) and a paired bootstrap (interval of the mean).
  The models are leased one after the other, so the pair need not fit the budget together.
* ``feed_trust``: the MEF rows (and the optional AgentTrustScorer message) of a finished single-model job.
"""
from __future__ import annotations

import math
import threading
from typing import TYPE_CHECKING, Any
from collections.abc import Callable

import zmq

from bus.errors import BadRequest

from .eval_measure import paired_bootstrap, sign_test, summarise, text_nll, timed_generation, tokenize

if TYPE_CHECKING:
    from .evaluation_jobs import EvaluationSettings

DEFAULT_TEXTS = (
    "The quick brown fox jumps over the lazy dog. It is a sentence that uses every letter of the alphabet.",
    "A voice assistant listens for a wake word, turns speech into text, decides what to do, and answers "
    "with synthesized speech.",
    "Rain fell on the old town all night, and in the morning the streets were clean and the air was cold.",
    "To make tea, boil fresh water, warm the pot, add the leaves, and let them steep for three to five minutes.",
)
DEFAULT_PROMPTS = ("Hello, how are you today?", "Write one sentence about the sea.",
                   "What is the capital of France?")
DEFAULT_AB_PROMPTS = (
    {"prompt": "The capital of France is", "reference": " Paris."},
    {"prompt": "One, two, three, four,", "reference": " five, six, seven."},
    {"prompt": "The opposite of hot is", "reference": " cold."},
    {"prompt": "Water freezes at zero degrees", "reference": " Celsius."},
    {"prompt": "The sun rises in the", "reference": " east."},
    {"prompt": "A week has seven", "reference": " days."},
)
Progress = Callable[[dict[str, Any]], None]


class JobInterrupted(Exception):
    """The hub is stopping: the job goes back to the queue."""


def run_single(loader: Any, row: Any, cfg: EvaluationSettings, progress: Progress,
               stop: threading.Event) -> dict[str, Any]:
    params = row.params or {}
    texts = list(params.get("texts") or DEFAULT_TEXTS)
    prompts = list(params.get("prompts") or DEFAULT_PROMPTS)
    max_tokens = int(params.get("max_tokens") or cfg.max_tokens)
    rows = cfg.logits_batch
    with loader.lease(row.model_id) as entry:
        versions = {"model_version": entry.record.version, "model_sha256": entry.record.sha256}
        per_text = []
        for index, text in enumerate(texts):
            _check(stop)
            nll, count, size = entry.worker.call(lambda llm, t=text: _score(llm, t, None, rows))
            per_text.append({"index": index, "tokens": count, "bytes": size, "nll": nll,
                             "perplexity": _exp(nll / count) if count else None})
            progress({"phase": "perplexity", "done": index + 1, "total": len(texts)})
        per_prompt = []
        for index, prompt in enumerate(prompts):
            _check(stop)
            timing = entry.worker.call(lambda llm, p=prompt: timed_generation(llm, tokenize(llm, p), max_tokens))
            per_prompt.append({"index": index, **_ms(timing)})
            progress({"phase": "latency", "done": index + 1, "total": len(prompts)})
    return _single_results(versions, per_text, per_prompt)


def _single_results(versions: dict, per_text: list[dict], per_prompt: list[dict]) -> dict[str, Any]:
    nll = sum(t["nll"] for t in per_text)
    tokens = sum(t["tokens"] for t in per_text)
    size = sum(t["bytes"] for t in per_text)
    perplexity = _exp(nll / tokens) if tokens else None
    ttft = summarise([p["ttft_ms"] for p in per_prompt])
    rate = summarise([p["tokens_per_s"] for p in per_prompt if p["tokens_per_s"] is not None])
    return {
        "versions": versions,
        "perplexity": {"value": perplexity, "tokens": tokens, "nll_mean": nll / tokens if tokens else None,
                       "bits_per_byte": nll / math.log(2) / size if size else None, "texts": per_text},
        "latency": {"ttft_ms": ttft, "tokens_per_s": rate, "prompts": per_prompt},
        "summary": {"perplexity": perplexity, "ttft_ms": ttft["mean"] if ttft else None,
                    "tokens_per_s": rate["mean"] if rate else None,
                    "ok": sum(t["perplexity"] is not None for t in per_text) + len(per_prompt),
                    "total": len(per_text) + len(per_prompt)},
    }


def run_ab(loader: Any, row: Any, cfg: EvaluationSettings, progress: Progress, stop: threading.Event) -> dict[str, Any]:
    params = row.params or {}
    items = [ab_item(i, item) for i, item in enumerate(params.get("prompts") or DEFAULT_AB_PROMPTS)]
    max_tokens = int(params.get("max_tokens") or cfg.max_tokens)
    rows = cfg.logits_batch
    sides: dict[str, list[dict[str, Any]]] = {}
    versions: dict[str, Any] = {}
    for side, model_id in (("a", row.model_id), ("b", row.model_b_id)):
        with loader.lease(model_id) as entry:
            prefix = "model" if side == "a" else "model_b"
            versions.update({f"{prefix}_version": entry.record.version, f"{prefix}_sha256": entry.record.sha256})
            scores = []
            for index, (prompt, reference) in enumerate(items):
                _check(stop)
                nll, count, size = entry.worker.call(lambda llm, p=prompt, r=reference: _score(llm, p, r, rows))
                timing = entry.worker.call(lambda llm, p=prompt: timed_generation(llm, tokenize(llm, p), max_tokens))
                scores.append({"score": -nll / size if size else None, "tokens": count, **_ms(timing)})
                progress({"phase": f"model {side}", "done": index + 1, "total": len(items)})
            sides[side] = scores
    return _ab_results(versions, row, items, sides, cfg)


def _ab_results(versions: dict, row: Any, items: list, sides: dict, cfg: EvaluationSettings) -> dict[str, Any]:
    per_prompt, diffs = [], []
    for index, (a, b) in enumerate(zip(sides["a"], sides["b"], strict=False)):
        diff = a["score"] - b["score"] if a["score"] is not None and b["score"] is not None else None
        if diff is not None:
            diffs.append(diff)
        per_prompt.append({"index": index, "prompt": items[index][0], "score_a": a["score"], "score_b": b["score"],
                           "diff": diff, "winner": None if diff is None or diff == 0 else ("a" if diff > 0 else "b"),
                           "ttft_ms_a": a["ttft_ms"], "ttft_ms_b": b["ttft_ms"]})
    sign = sign_test(diffs)
    boot = paired_bootstrap(diffs, cfg.bootstrap_samples, seed=0)
    significant = sign["p_value"] < cfg.alpha
    mean_diff = boot["mean_diff"]
    winner = ("a" if mean_diff > 0 else "b") if significant and mean_diff else None
    summary = {"model_a": row.model_id, "model_b": row.model_b_id, "prompts": len(items),
               "mean_score_a": summarise([p["score_a"] for p in per_prompt]),
               "mean_score_b": summarise([p["score_b"] for p in per_prompt]),
               "sign_test": sign, "bootstrap": boot, "alpha": cfg.alpha, "significant": significant,
               "winner": {"a": row.model_id, "b": row.model_b_id}.get(winner or ""),
               "score": "log-likelihood per byte of the reference given the prompt (higher is better)"}
    return {"versions": versions, "per_prompt": per_prompt, "summary": summary}


def _score(llm: Any, text: str, reference: str | None, rows: int) -> tuple[float, int, int]:
    """(nll, scored tokens, scored bytes) of ``text``, or of ``reference`` given ``text`` as the prompt."""
    if reference is None:
        tokens = tokenize(llm, text)
        nll, count = text_nll(llm, tokens, 1, rows)
        return nll, count, len(text.encode("utf-8"))
    prompt_tokens = tokenize(llm, text)
    tokens = tokenize(llm, text + reference)
    shared = 0
    while shared < min(len(prompt_tokens), len(tokens)) and prompt_tokens[shared] == tokens[shared]:
        shared += 1
    nll, count = text_nll(llm, tokens, max(1, shared), rows)
    scored_bytes = len(llm.detokenize(tokens[max(1, shared):]))
    return nll, count, scored_bytes


def ab_item(index: int, item: Any) -> tuple[str, str | None]:
    if isinstance(item, str):
        return item, None
    if isinstance(item, dict) and isinstance(item.get("prompt"), str) and \
            isinstance(item.get("reference", ""), (str, type(None))):
        return item["prompt"], item.get("reference") or None
    raise BadRequest(f"prompts[{index}] must be a string or {{prompt, reference?}}", details={"field": "prompts"})


def _ms(timing: dict[str, Any]) -> dict[str, Any]:
    return {"prompt_tokens": timing["prompt_tokens"], "tokens": timing["tokens"],
            "ttft_ms": timing["ttft_s"] * 1000.0, "total_ms": timing["total_s"] * 1000.0,
            "tokens_per_s": timing["tokens_per_s"]}


def _exp(value: float) -> float | None:
    try:
        result = math.exp(value)
    except OverflowError:
        return None
    return result if math.isfinite(result) else None


def _check(stop: threading.Event) -> None:
    if stop.is_set():
        raise JobInterrupted()


# ------------------------------------------------------------------------------------------ trust
def feed_trust(records: Any, row: Any, results: dict[str, Any], cfg: EvaluationSettings) -> dict[str, Any]:
    summary = results["summary"]
    total = summary["total"] or 1
    ttft_s = (summary["ttft_ms"] or 0.0) / 1000.0
    trust = 0.7 * summary["ok"] / total + 0.3 * max(0.0, 1.0 - ttft_s / 5.0)
    versions = results.get("versions") or {}
    evaluation_id = records.log_evaluation({
        "model_name": row.model_id, "cycle_id": row.id, "trust_score": round(min(1.0, max(0.0, trust)), 6),
        "avg_latency_ms": summary["ttft_ms"] or 0.0,
        "comparison_data": {"eval_id": row.id, "version": versions.get("model_version"),
                            "sha256": versions.get("model_sha256"), "perplexity": summary["perplexity"],
                            "tokens_per_s": summary["tokens_per_s"],
                            "bits_per_byte": results["perplexity"]["bits_per_byte"]}})
    metric_ids = []
    context = {"eval_id": row.id, "version": versions.get("model_version")}
    for name, value in (("eval.perplexity", summary["perplexity"]), ("eval.ttft_ms", summary["ttft_ms"]),
                        ("eval.tokens_per_s", summary["tokens_per_s"])):
        if value is not None and math.isfinite(value):
            metric_ids.append(records.log_metric({"agent_name": row.model_id, "metric_name": name, "value": value,
                                                  "context": context}))
    out: dict[str, Any] = {"trust_score": trust, "evaluation_id": evaluation_id, "metric_ids": metric_ids}
    endpoint = cfg.trust_scorer_endpoint
    if endpoint:
        out["trust_scorer"] = _send_trust(endpoint, cfg.trust_scorer_timeout_ms, {
            "action": "log_performance", "model_id": row.model_id, "success": summary["ok"] == summary["total"],
            "response_time": ttft_s})
    return out


def _send_trust(endpoint: str, timeout_ms: int, message: dict[str, Any]) -> dict[str, Any]:
    sock = zmq.Context.instance().socket(zmq.REQ)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.SNDTIMEO, timeout_ms)
    sock.setsockopt(zmq.RCVTIMEO, timeout_ms)
    try:
        sock.connect(endpoint)
        sock.send_json(message)
        return {"sent": True, "endpoint": endpoint, "reply": sock.recv_json()}
    except (zmq.ZMQError, ValueError) as exc:
        return {"sent": False, "endpoint": endpoint, "error": str(exc)}
    finally:
        sock.close(linger=0)
