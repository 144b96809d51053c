"""Which models will be needed next: the usage log, the legacy heuristic, the learned predictor, the plan.

* ``UsageLog``: the SQL usage log (``model_usage``; ``usage_models`` keeps the order in which models were
  first recorded). Every model request served by the hub is one row.
* ``legacy_top``: the legacy PredictiveLoader heuristic, exactly: count each model's usages with
  ``now - ts < prediction_window`` (3600 s), ``sorted(counts.items(), key=count, reverse=True)[:3]``.
  Python's sort is stable also with ``reverse=True``, so models with equal counts keep the order of
  the legacy dict, i.e. the order in which each model was first recorded (``usage_models.seq``).
* ``LearnedPredictor``: scores every known model as a mix of four normalised components learned from
  the same log, all with exponential decay so old habits fade:
  - transition (first-order Markov): which model followed the previous one (``next | last``),
  - time of day: which models were used in this part of the day, at the prediction horizon (kernel over
    neighbouring buckets, decayed per day),
  - frequency: decayed use counts (half-life ``frequency_half_life_s``),
  - recency: ``exp(-age / recency_tau_s)`` of each model's last use.
* ``plan_preloads``: given scores and the loaded set, which models to preload and which idle, unpinned,
  lower-scored models to unload first so that the preload fits; never touches a pinned or busy model.
"""
from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass, field
from typing import Any
from collections.abc import Iterable

from sqlalchemy import delete, func, select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import sessionmaker

from agents.model_manager_suite.store import db_guard
from bus.settings import SettingError, setting

from .eval_models import ModelUsageRow, UsageModelRow

@dataclass(frozen=True)
class PredictorSettings:
    """Settings section ``predictive_loader`` (the usage log, the predictor and the preloader)."""
    prediction_window_s: float = setting(3600.0, minimum=0.0)   # legacy heuristic window
    legacy_top_n: int = setting(3, minimum=0)                   # legacy heuristic size
    preload_enabled: bool = True          # in-process preloading (replaces the legacy RequestCoordinator call)
    preload_interval_s: float = setting(60.0, minimum=0.05)    # periodic planning (legacy: every 60 s)
    settle_s: float = setting(0.5, minimum=0.01)  # after a request, wait this long (it leases its model) then plan
    preload_top_n: int = setting(2, minimum=0)    # candidates considered per planning round
    min_score: float = setting(0.15, minimum=0.0, maximum=1.0)  # a candidate below this score is not preloaded
    hysteresis: float = setting(0.25, minimum=0.0)  # a victim is unloaded only if score < candidate's / (1 + this)
    horizon_s: float = setting(60.0, minimum=0.0)   # time-of-day component looks this far ahead
    transition_weight: float = setting(0.45, minimum=0.0)
    time_weight: float = setting(0.25, minimum=0.0)
    frequency_weight: float = setting(0.15, minimum=0.0)
    recency_weight: float = setting(0.15, minimum=0.0)
    transition_half_life_s: float = 7 * 86400.0
    time_half_life_s: float = 14 * 86400.0
    frequency_half_life_s: float = 3600.0
    recency_tau_s: float = 900.0
    time_bucket_s: float = setting(1800.0, maximum=86400.0)   # time-of-day bucket (30 min)
    history_days: float = setting(30.0, minimum=0.0)          # usage replayed into the learned model at start
    retention_days: float = setting(90.0, minimum=0.0)        # usage rows older than this are pruned
    request_coordinator_endpoint: str = ""                    # e.g. tcp://localhost:8571; empty = not sent
    request_coordinator_timeout_ms: int = setting(2000, minimum=1)
    request_coordinator_max_backoff_s: float = setting(600.0, minimum=0.0)

    def __post_init__(self) -> None:
        for name in ("transition_half_life_s", "time_half_life_s", "frequency_half_life_s", "recency_tau_s",
                     "time_bucket_s"):
            if not getattr(self, name) > 0:
                raise SettingError(name, f"must be > 0, got {getattr(self, name)!r}")

    def weight(self, component: str) -> float:
        return float(getattr(self, f"{component}_weight"))


# ---------------------------------------------------------------------------------------------- usage log
class UsageLog:
    """``model_usage`` / ``usage_models`` rows; every method is one short transaction (thread-safe)."""

    def __init__(self, engine: Engine):
        self.engine = engine
        self._session = sessionmaker(engine, expire_on_commit=False)

    def record(self, model_id: str, ts: float, source: str = "request", was_loaded: bool | None = None) -> None:
        try:
            with db_guard("model database"), self._session.begin() as s:
                s.add(ModelUsageRow(model_id=model_id, ts=ts, source=source, was_loaded=was_loaded))
                if s.scalar(select(UsageModelRow.seq).where(UsageModelRow.model_id == model_id)) is None:
                    s.add(UsageModelRow(model_id=model_id, first_used=ts))
        except IntegrityError:   # a concurrent first use of the same model won the unique constraint
            with db_guard("model database"), self._session.begin() as s:
                s.add(ModelUsageRow(model_id=model_id, ts=ts, source=source, was_loaded=was_loaded))

    def counts_since(self, since: float) -> list[tuple[str, int]]:
        """(model_id, usages with ts > since), in first-recorded order (the legacy dict order)."""
        with db_guard("model database"), self._session.begin() as s:
            rows = s.execute(
                select(ModelUsageRow.model_id, func.count(), func.min(UsageModelRow.seq))
                .join(UsageModelRow, UsageModelRow.model_id == ModelUsageRow.model_id, isouter=True)
                .where(ModelUsageRow.ts > since).group_by(ModelUsageRow.model_id)).all()
        rows.sort(key=lambda r: (r[2] if r[2] is not None else math.inf, r[0]))
        return [(r[0], int(r[1])) for r in rows]

    def history(self, since: float, limit: int = 500_000) -> list[tuple[float, str]]:
        """(ts, model_id) oldest first, at most the newest ``limit`` rows."""
        with db_guard("model database"), self._session.begin() as s:
            rows = s.execute(select(ModelUsageRow.ts, ModelUsageRow.model_id).where(ModelUsageRow.ts >= since)
                             .order_by(ModelUsageRow.ts.desc(), ModelUsageRow.id.desc()).limit(limit)).all()
        return [(float(ts), mid) for ts, mid in reversed(rows)]

    def request_counts(self) -> dict[str, int]:
        """Requests by whether their model was already loaded: {requests, loaded, not_loaded}."""
        with db_guard("model database"), self._session.begin() as s:
            rows = s.execute(select(ModelUsageRow.was_loaded, func.count())
                             .where(ModelUsageRow.source == "request").group_by(ModelUsageRow.was_loaded)).all()
        by = {k: int(v) for k, v in rows}
        return {"requests": sum(by.values()), "loaded": by.get(True, 0), "not_loaded": by.get(False, 0)}

    def total(self) -> int:
        with db_guard("model database"), self._session.begin() as s:
            return int(s.scalar(select(func.count()).select_from(ModelUsageRow)) or 0)

    def prune(self, before: float) -> int:
        with db_guard("model database"), self._session.begin() as s:
            return int(s.execute(delete(ModelUsageRow).where(ModelUsageRow.ts < before)).rowcount or 0)


def legacy_top(counts: Iterable[tuple[str, int]], n: int = 3) -> list[str]:
    """The legacy ranking: stable sort by count, descending (ties keep the input order)."""
    ranked = sorted(counts, key=lambda item: item[1], reverse=True)
    return [model_id for model_id, _ in ranked[:n]]


# ---------------------------------------------------------------------------------------- learned model
class DecayingCounts:
    """Counters that halve every ``half_life`` seconds, decayed lazily on access."""

    def __init__(self, half_life: float):
        self.rate = math.log(2) / half_life if half_life > 0 else 0.0
        self._values: dict[Any, tuple[float, float]] = {}

    def add(self, key: Any, t: float, amount: float = 1.0) -> None:
        self._values[key] = (self.get(key, t) + amount, t)

    def get(self, key: Any, t: float) -> float:
        value, at = self._values.get(key, (0.0, t))
        return value * math.exp(-self.rate * max(0.0, t - at))

    def keys(self) -> list[Any]:
        return list(self._values)


@dataclass
class LearnedPredictor:
    settings: PredictorSettings = field(default_factory=PredictorSettings)

    def __post_init__(self) -> None:
        cfg = self.settings
        self.bucket_s = cfg.time_bucket_s
        self.n_buckets = max(1, round(86400.0 / self.bucket_s))
        self.transitions = DecayingCounts(cfg.transition_half_life_s)   # key (prev, next)
        self.from_totals = DecayingCounts(cfg.transition_half_life_s)   # key prev
        self.by_time = DecayingCounts(cfg.time_half_life_s)             # key (bucket, model)
        self.frequency = DecayingCounts(cfg.frequency_half_life_s)      # key model
        self.last_use: dict[str, float] = {}
        self.last_model: str | None = None
        self.observations = 0
        self._lock = threading.Lock()

    def observe(self, model_id: str, ts: float) -> None:
        with self._lock:
            if self.last_model is not None:
                self.transitions.add((self.last_model, model_id), ts)
                self.from_totals.add(self.last_model, ts)
            self.by_time.add((self._bucket(ts), model_id), ts)
            self.frequency.add(model_id, ts)
            self.last_use[model_id] = ts
            self.last_model = model_id
            self.observations += 1

    def scores(self, now: float, last: str | None = None) -> dict[str, dict[str, float]]:
        """Per model: the combined ``score`` and its four components (each a distribution over models)."""
        with self._lock:
            models = sorted(self.last_use)
            if not models:
                return {}
            prev = self.last_model if last is None else last
            parts = {
                "transition": self._transition(models, prev, now),
                "time": self._time_of_day(models, now + self.settings.horizon_s),
                "frequency": _normalise({m: self.frequency.get(m, now) for m in models}),
                "recency": _normalise({m: math.exp(-max(0.0, now - self.last_use[m]) / self.settings.recency_tau_s)
                                       for m in models}),
            }
        weights = {name: self.settings.weight(name) for name in parts}
        total_w = sum(weights.values()) or 1.0
        out = {}
        for m in models:
            comp = {name: parts[name].get(m, 0.0) for name in parts}
            out[m] = {"score": sum(weights[n] * comp[n] for n in comp) / total_w, **comp}
        return out

    def predict(self, now: float, n: int = 3, last: str | None = None) -> list[tuple[str, float]]:
        ranked = sorted(((m, s["score"]) for m, s in self.scores(now, last).items()), key=lambda x: (-x[1], x[0]))
        return ranked[:n]

    def _transition(self, models: list[str], prev: str | None, now: float) -> dict[str, float]:
        if prev is None or self.from_totals.get(prev, now) <= 1e-9:
            return {}
        return _normalise({m: self.transitions.get((prev, m), now) for m in models})

    def _time_of_day(self, models: list[str], at: float) -> dict[str, float]:
        centre = self._bucket(at)
        kernel = {0: 1.0, -1: 0.5, 1: 0.5, -2: 0.25, 2: 0.25}
        raw = {m: sum(w * self.by_time.get(((centre + d) % self.n_buckets, m), at) for d, w in kernel.items())
               for m in models}
        return _normalise(raw)

    def _bucket(self, ts: float) -> int:
        local = time.localtime(ts)
        seconds = local.tm_hour * 3600 + local.tm_min * 60 + local.tm_sec
        return int(seconds // self.bucket_s) % self.n_buckets


def _normalise(values: dict[str, float]) -> dict[str, float]:
    total = sum(v for v in values.values() if v > 0)
    if total <= 1e-12:
        return {}
    return {k: v / total for k, v in values.items() if v > 0}


# ------------------------------------------------------------------------------------------- the plan
@dataclass(frozen=True)
class Resident:
    """A loaded model as the planner sees it."""

    model_id: str
    size_mb: float
    pinned: bool = False
    busy: bool = False
    device: str = "cpu"
    priority: int = 0


@dataclass(frozen=True)
class Candidate:
    model_id: str
    score: float
    size_mb: float
    device: str = "cpu"
    priority: int = 0


@dataclass
class PreloadStep:
    model_id: str
    score: float
    unload_first: list[str]


def plan_preloads(candidates: list[Candidate], residents: list[Resident], free_mb: dict[str, float],
                  scores: dict[str, float], *, min_score: float = 0.0, hysteresis: float = 0.0) -> list[PreloadStep]:
    """Preloads (best first) that fit the budget, each with the victims to unload before it.

    A victim is loaded, idle, unpinned, of the candidate's priority or lower (as the loader's own
    eviction), not itself a candidate of this round, and scored below the candidate's score /
    (1 + hysteresis). Nothing is planned if even all eligible victims would not
    make room. ``free_mb`` is per device and is consumed by the plan."""
    free = dict(free_mb)
    loaded = {r.model_id: r for r in residents}
    wanted = {c.model_id for c in candidates}
    removed: set[str] = set()
    steps: list[PreloadStep] = []
    for cand in sorted(candidates, key=lambda c: (-c.score, c.model_id)):
        if (cand.model_id in loaded and cand.model_id not in removed) or cand.score < min_score:
            continue
        room = free.get(cand.device, 0.0)
        victims: list[str] = []
        if cand.size_mb > room:
            limit = cand.score / (1.0 + hysteresis)
            eligible = sorted((r for r in loaded.values()
                               if r.device == cand.device and r.model_id not in removed and r.model_id not in wanted
                               and not r.pinned and not r.busy and r.priority <= cand.priority
                               and scores.get(r.model_id, 0.0) < limit),
                              key=lambda r: (scores.get(r.model_id, 0.0), r.model_id))
            for victim in eligible:
                if cand.size_mb <= room:
                    break
                victims.append(victim.model_id)
                room += victim.size_mb
            if cand.size_mb > room:
                continue
        removed.update(victims)
        free[cand.device] = room - cand.size_mb
        steps.append(PreloadStep(cand.model_id, cand.score, victims))
    return steps

