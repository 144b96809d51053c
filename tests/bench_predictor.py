"""Hit rate of model preloading policies on a synthetic usage trace with a daily pattern.

    python -m tests.bench_predictor [--days 14] [--seed 7]

A "hit" is a request whose model is already loaded when it arrives. Three policies share the same
trace, model sizes and memory budget (the simulated loader evicts in LRU order to serve a request):

* ``lru``: no preloading, load on demand only.
* ``legacy``: every 60 s, the legacy PredictiveLoader top 3 (most used in the last hour, agents/
  model_manager_suite/predictor.legacy_top) is loaded through the same LRU loader, as the legacy
  ``preload_model`` request to the RequestCoordinator made the model manager do.
* ``learned``: the LearnedPredictor after each request and every 60 s, its preloads planned by
  ``plan_preloads`` (victims: idle, unpinned, lower-scored models; never over the budget).

The trace: seven models (speech-to-text, two chat LLMs, a code model, a translator, a vision model,
text-to-speech) used in sessions whose kind depends on the time of day (voice pipelines in the morning,
code and vision during work hours, translation and quality chat in the evening), session starts a
Poisson process with an hourly rate profile. The pipelines (stt -> llm -> tts) do not fit the budget
together, so LRU alone thrashes.
"""
from __future__ import annotations

import argparse
import random
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from collections.abc import Callable

from bus.settings import from_mapping
from agents.model_manager_suite.predictor import (Candidate, LearnedPredictor, Resident, legacy_top,
                                                  PredictorSettings, plan_preloads)

SIZES_MB = {"stt": 400.0, "tts": 400.0, "llm-fast": 1800.0, "llm-quality": 2000.0, "code": 1600.0,
            "translator": 1000.0, "vision": 1200.0}
BUDGET_MB = 2400.0
TICK_S = 60.0
# session starts per hour of the day
HOURLY_RATE = [0, 0, 0, 0, 0, 0, 1, 4, 6, 5, 3, 3, 3, 4, 3, 3, 3, 3, 4, 5, 6, 5, 3, 1]
START = time.mktime((2026, 3, 2, 0, 0, 0, 0, 0, -1))   # local midnight, a Monday


def _session(hour: int, rng: random.Random) -> list[str]:
    """The model sequence of one session started at ``hour`` (local)."""
    turns = rng.randint(2, 5)
    if 6 <= hour < 10:
        return ["stt", "llm-fast", "tts"] * turns
    if 10 <= hour < 17:
        if rng.random() < 0.7:
            return ["code"] * rng.randint(3, 8)
        return ["vision", "llm-quality"] * rng.randint(1, 3)
    if rng.random() < 0.6:
        return ["stt", "translator", "tts"] * turns
    return ["stt", "llm-quality", "tts"] * turns


def synthetic_trace(days: int = 14, seed: int = 7) -> list[tuple[float, str]]:
    """(timestamp, model_id) requests, sorted by time."""
    rng = random.Random(seed)
    out: list[tuple[float, str]] = []
    for day in range(days):
        for hour, rate in enumerate(HOURLY_RATE):
            for _ in range(_poisson(rate, rng)):
                t = START + day * 86400 + hour * 3600 + rng.uniform(0, 3600)
                for model_id in _session(hour, rng):
                    out.append((t, model_id))
                    t += rng.uniform(4.0, 40.0)
    out.sort()
    return out


def _poisson(lam: float, rng: random.Random) -> int:
    count, total = 0, rng.expovariate(1.0) if lam > 0 else float("inf")
    while total < lam:
        count += 1
        total += rng.expovariate(1.0)
    return count


@dataclass
class SimLoader:
    """Loaded models in LRU order within a memory budget (the ModelLoader's eviction, simulated)."""

    sizes: dict[str, float]
    budget: float
    loaded: OrderedDict = field(default_factory=OrderedDict)
    pending: set = field(default_factory=set)      # preloaded, not yet used
    wasted: int = 0
    preloads: int = 0
    peak_mb: float = 0.0

    def used_mb(self) -> float:
        return sum(self.sizes[m] for m in self.loaded)

    def request(self, model_id: str) -> bool:
        hit = model_id in self.loaded
        if hit:
            self.loaded.move_to_end(model_id)
        else:
            self.load(model_id)
        self.pending.discard(model_id)
        return hit

    def load(self, model_id: str) -> None:
        while self.loaded and self.used_mb() + self.sizes[model_id] > self.budget:
            self.unload(next(iter(self.loaded)))
        self.loaded[model_id] = True
        self.peak_mb = max(self.peak_mb, self.used_mb())

    def unload(self, model_id: str) -> None:
        del self.loaded[model_id]
        if model_id in self.pending:
            self.pending.discard(model_id)
            self.wasted += 1

    def preload(self, model_id: str, victims: list[str]) -> None:
        for victim in victims:
            self.unload(victim)
        if self.used_mb() + self.sizes[model_id] > self.budget:
            raise AssertionError("a planned preload would exceed the budget")
        self.loaded[model_id] = True
        self.loaded.move_to_end(model_id, last=False)   # least recently *used*: first in line for eviction
        self.pending.add(model_id)
        self.preloads += 1
        self.peak_mb = max(self.peak_mb, self.used_mb())


def learned_policy(settings: dict | None = None) -> Callable[[SimLoader, float, str | None], None]:
    predictor = LearnedPredictor(from_mapping(PredictorSettings, settings))
    cfg = predictor.settings

    def step(sim: SimLoader, now: float, used: str | None) -> None:
        if used is not None:
            predictor.observe(used, now)
        scored = predictor.scores(now)
        scores = {m: s["score"] for m, s in scored.items()}
        top = sorted(scores.items(), key=lambda x: (-x[1], x[0]))[: cfg.preload_top_n]
        plan = plan_preloads([Candidate(m, s, sim.sizes[m]) for m, s in top],
                             [Resident(m, sim.sizes[m]) for m in sim.loaded],
                             {"cpu": sim.budget - sim.used_mb()}, scores,
                             min_score=cfg.min_score, hysteresis=cfg.hysteresis)
        for item in plan:
            sim.preload(item.model_id, item.unload_first)

    return step


def legacy_policy() -> Callable[[SimLoader, float, str | None], None]:
    usage: dict[str, list[float]] = {}

    def step(sim: SimLoader, now: float, used: str | None) -> None:
        if used is not None:
            usage.setdefault(used, []).append(now)
            return
        counts = [(m, sum(1 for u in ts if now - u < 3600)) for m, ts in usage.items()]
        for model_id in legacy_top([(m, c) for m, c in counts if c], 3):
            if model_id not in sim.loaded:
                sim.load(model_id)
                sim.pending.add(model_id)
                sim.preloads += 1

    return step


def simulate(trace: list[tuple[float, str]], policy: str, *, budget: float = BUDGET_MB,
             sizes: dict[str, float] | None = None, warmup_days: float = 0.0,
             tick_s: float = TICK_S) -> dict[str, float]:
    sim = SimLoader(dict(sizes or SIZES_MB), budget)
    step = {"lru": None, "legacy": legacy_policy(), "learned": learned_policy()}[policy]
    hits = requests = 0
    next_tick = trace[0][0] if trace else 0.0
    scored_from = (trace[0][0] + warmup_days * 86400) if trace else 0.0
    for ts, model_id in trace:
        while step is not None and next_tick <= ts:
            step(sim, next_tick, None)
            next_tick += tick_s
        hit = sim.request(model_id)
        if ts >= scored_from:
            requests += 1
            hits += hit
        if step is not None:
            step(sim, ts, model_id)
    return {"policy": policy, "requests": requests, "hits": hits, "hit_rate": hits / requests if requests else 0.0,
            "preloads": sim.preloads, "wasted": sim.wasted, "peak_mb": sim.peak_mb, "budget_mb": budget}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.bench_predictor", description=__doc__.split("\n")[0])
    parser.add_argument("--days", type=int, default=14)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--warmup-days", type=float, default=2.0)
    args = parser.parse_args(argv)
    trace = synthetic_trace(args.days, args.seed)
    print(f"synthetic trace: {len(trace)} requests over {args.days} days, {len(SIZES_MB)} models, "
          f"budget {BUDGET_MB:.0f} MB; hit rate scored after {args.warmup_days:g} warm-up days")
    print(f"{'policy':<10}{'hit rate':>10}{'hits':>8}{'requests':>10}{'preloads':>10}{'wasted':>8}{'peak MB':>9}")
    results = {}
    for policy in ("lru", "legacy", "learned"):
        started = time.perf_counter()
        r = simulate(trace, policy, warmup_days=args.warmup_days)
        results[policy] = r
        print(f"{policy:<10}{r['hit_rate']:>10.3f}{r['hits']:>8}{r['requests']:>10}{r['preloads']:>10}"
              f"{r['wasted']:>8}{r['peak_mb']:>9.0f}   ({time.perf_counter() - started:.2f} s)")
    learned = results["learned"]["hit_rate"]
    print(f"learned vs LRU-only: {learned - results['lru']['hit_rate']:+.3f}; "
          f"learned vs legacy top-3: {learned - results['legacy']['hit_rate']:+.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
