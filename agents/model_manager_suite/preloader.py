"""Predictive preloading in the hub: usage recording, hit/miss/waste accounting, the background planner.

``Preloader.record_usage(model_id)`` is called once per model request, when the request arrives and
before it is served (so it can tell whether the model was already loaded). It appends to the SQL usage
log, feeds the learned predictor, counts a preload *hit* (the model is loaded because a prediction
preloaded it and no request had used it yet) or a *miss* (the model is not loaded), and wakes the
planner.

The planner (a daemon thread; every ``preload_interval_s`` and ``settle_s`` after each recorded request,
retried every ``settle_s`` while that request is still loading its model) asks the
learned predictor for the best ``preload_top_n`` models, the loader what is loaded and how much of the
budget is free, and preloads with ``plan_preloads``: idle, unpinned, lower-scored models may be unloaded
to make room; a pinned or busy model never is; the load itself goes through ``ModelLoader.load(...,
evict=False)``, which re-checks the budget under the device lock, so the budget is never exceeded.
A preloaded model unloaded before any request used it is *wasted*; one whose request arrived while it was
being loaded is *late* (counted neither way). Each preload publishes
``model.preloaded``. Counters: prometheus ``mms_preload_{hits,misses,wasted}_total``,
``mms_preloads_total``; the same numbers survive restarts in SQL (``preloads``, ``model_usage``).

Legacy neighbour: when ``request_coordinator_endpoint`` is set, each periodic round also sends the legacy
top 3 to it as the legacy agent did (REQ, JSON ``{"action":"preload_model","model_id","priority":"low",
"source":"PredictiveLoader"}``), with exponential backoff while it does not answer.
"""
from __future__ import annotations

import logging
import threading
import time
from typing import Any
from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter
from sqlalchemy import func, select, update
from sqlalchemy.orm import sessionmaker

from bus.errors import Conflict, HubError, NotFound
from bus.periodic import PeriodicTask

from .eval_models import PreloadRow
from .predictor import (Candidate, LearnedPredictor, PreloadStep, Resident, UsageLog, legacy_top, plan_preloads,
                        PredictorSettings)
from .rc_notifier import RequestCoordinatorNotifier

log = logging.getLogger(__name__)


class PreloadMetrics:
    def __init__(self, registry: CollectorRegistry | None):
        r = registry if registry is not None else CollectorRegistry()
        self.hits = Counter("mms_preload_hits_total", "Requests whose model was loaded by a prediction", registry=r)
        self.misses = Counter("mms_preload_misses_total", "Requests whose model was not loaded", registry=r)
        self.wasted = Counter("mms_preload_wasted_total", "Preloaded models unloaded before any request used them",
                              registry=r)
        self.preloads = Counter("mms_preloads_total", "Models preloaded", ["reason"], registry=r)


class Preloader:
    def __init__(self, settings: PredictorSettings, engine: Any, loader: Any, events: Any = None,
                 metrics_registry: CollectorRegistry | None = None, *, clock: Callable[[], float] = time.time):
        self.cfg = settings
        self.usage = UsageLog(engine)
        self.loader, self.events, self.clock = loader, events, clock
        self.metrics = PreloadMetrics(metrics_registry)
        self.learned = LearnedPredictor(self.cfg)
        self.notifier = RequestCoordinatorNotifier(settings.request_coordinator_endpoint,
                                                   settings.request_coordinator_timeout_ms,
                                                   settings.request_coordinator_max_backoff_s, clock=clock)
        self._session = sessionmaker(engine, expire_on_commit=False)
        self._pending: dict[str, int] = {}           # model id -> preloads row id (preloaded, not yet used)
        self._lock = threading.RLock()
        self._plan_lock = threading.Lock()
        # woken by each recorded request; a round runs after settle_s so a burst of requests makes one round
        self._task = PeriodicTask("predictive-preloader", self.cfg.preload_interval_s, self._background_round,
                                  settle_s=self.cfg.settle_s, run_sets_delay=True)
        self._last_round = 0.0
        self._last_prune = 0.0
        self._last_request: tuple[str, float] | None = None
        self._deferred = False           # a round was skipped while a request loads its model: retry soon
        self._use_seq = 0                # counts recorded requests; per model the number of its latest one
        self._last_use: dict[str, int] = {}

    # -- start / stop ---------------------------------------------------------------------------
    def open(self) -> None:
        """Replay recent usage into the learned model; close preloads left pending by a previous run."""
        now = self.clock()
        for ts, model_id in self.usage.history(now - self.cfg.history_days * 86400):
            self.learned.observe(model_id, ts)
        with self._session.begin() as s:
            s.execute(update(PreloadRow).where(PreloadRow.outcome == "pending")
                      .values(outcome="interrupted", resolved_at=now))

    def start(self) -> None:
        self._task.start()

    def stop(self) -> None:
        self._task.stop(30)
        self.notifier.close()

    # -- usage ------------------------------------------------------------------------------------
    def record_usage(self, model_id: str, *, source: str = "request", ts: float | None = None) -> dict[str, Any]:
        """Record one use of ``model_id`` (call it when a request arrives, before serving it)."""
        now = self.clock() if ts is None else ts
        resolved, was_loaded = self._loaded_state(model_id)
        outcome = None
        if was_loaded is not None and source == "request":
            outcome = self._account(resolved, was_loaded, now)
        self.usage.record(resolved, now, source, was_loaded)
        self.learned.observe(resolved, now)
        if source == "request" and was_loaded is not None:
            self._last_request = (resolved, now)
            with self._lock:
                self._use_seq += 1
                self._last_use[resolved] = self._use_seq
        if self.cfg.preload_enabled:
            self._task.wake()
        return {"model_id": resolved, "was_loaded": was_loaded, "outcome": outcome}

    def _loaded_state(self, model_id: str) -> tuple[str, bool | None]:
        """(canonical id, loaded now?) or (the name as given, None) for a model the registry does not know."""
        if self.loader is None:
            return model_id, None
        try:
            resolved = self.loader.resolve(model_id)
            return resolved, bool(self.loader.is_loaded(resolved))
        except NotFound:
            return model_id, None

    def _account(self, model_id: str, was_loaded: bool, now: float) -> str:
        with self._lock:
            row_id = self._pending.pop(model_id, None)
        if not was_loaded:
            self.metrics.misses.inc()
            if row_id is not None:           # preloaded, then unloaded before this request came
                self._resolve(row_id, "wasted", now)
            return "miss"
        if row_id is None:
            return "resident"
        self._resolve(row_id, "hit", now)
        self.metrics.hits.inc()
        return "hit"

    # -- predictions ------------------------------------------------------------------------------
    def legacy_predictions(self, now: float | None = None) -> list[str]:
        """The legacy heuristic: top ``legacy_top_n`` by use within ``prediction_window_s``."""
        now = self.clock() if now is None else now
        counts = self.usage.counts_since(now - self.cfg.prediction_window_s)
        return legacy_top(counts, self.cfg.legacy_top_n)

    def predict(self, n: int = 3, at: float | None = None, last: str | None = None) -> list[dict[str, Any]]:
        now = self.clock() if at is None else at
        scored = self.learned.scores(now, last)
        ranked = sorted(scored.items(), key=lambda item: (-item[1]["score"], item[0]))[:n]
        loaded = {info["model_id"] for info in self._loaded_infos()}
        return [{"model_id": m, "score": round(s["score"], 6), "loaded": m in loaded,
                 "components": {k: round(v, 6) for k, v in s.items() if k != "score"}} for m, s in ranked]

    # -- preloading -------------------------------------------------------------------------------
    def preload(self, model_id: str, *, evict: bool = True, reason: str = "request") -> dict[str, Any]:
        """Preload one model now (route POST /models/{id}/preload); may unload idle, unpinned models
        with lower predicted scores (``evict``), never a pinned or busy one."""
        if self.loader is None:
            raise Conflict("no model loader in this hub")
        resolved = self.loader.resolve(model_id)
        if self.loader.is_loaded(resolved):
            return {"model_id": resolved, "preloaded": False, "already_loaded": True, "unloaded": []}
        scores = self._scores(self.clock())
        top = max(scores.values(), default=0.0) + 1.0
        steps = self._plan([(resolved, top)], scores, hysteresis=0.0, min_score=0.0, allow_victims=evict)
        if not steps:
            est = self.loader.estimate(resolved)
            raise Conflict(f"model {resolved} needs {est['total_mb']:.0f} MB and only {est['free_mb']:.0f} MB can be "
                           f"freed without unloading a pinned, busy or higher-priority model",
                           details={"model_id": resolved, "needed_mb": est["total_mb"], "free_mb": est["free_mb"]})
        return self._apply(steps[0], reason)

    def run_once(self, now: float | None = None, *, periodic: bool = False) -> list[dict[str, Any]]:
        """One planning round; returns the preloads done."""
        now = self.clock() if now is None else now
        self.check_wasted(now)
        done: list[dict[str, Any]] = []
        self._deferred = self.loader is not None and self._request_loading(now)
        if self.cfg.preload_enabled and self.loader is not None and not self._deferred \
                and self._plan_lock.acquire(blocking=False):
            try:
                scores = self._scores(now)
                top = sorted(scores.items(), key=lambda x: (-x[1], x[0]))[: self.cfg.preload_top_n]
                for step in self._plan(top, scores, hysteresis=self.cfg.hysteresis,
                                       min_score=self.cfg.min_score, allow_victims=True):
                    try:
                        done.append(self._apply(step, "prediction"))
                    except HubError as exc:
                        log.info("preload of %s skipped: %s", step.model_id, exc)
            finally:
                self._plan_lock.release()
        if periodic and self.notifier.enabled:
            self.notifier.send(self.legacy_predictions(now))
        return done

    def _request_loading(self, now: float) -> bool:
        """True while the model of the latest request (under a minute ago) is still being loaded for it:
        planning then would count memory that request is about to take as free."""
        last = self._last_request
        if last is None:
            return False
        if now - last[1] >= 60.0 or self.loader.is_loaded(last[0]):
            self._last_request = None
            return False
        return True

    def check_wasted(self, now: float | None = None) -> list[str]:
        """Pending preloads whose model is no longer loaded: count them as wasted."""
        now = self.clock() if now is None else now
        with self._lock:
            pending = dict(self._pending)
        loaded = {info["model_id"] for info in self._loaded_infos()}
        gone = [m for m in pending if m not in loaded]
        for model_id in gone:
            with self._lock:
                row_id = self._pending.pop(model_id, None)
            if row_id is not None:
                self._resolve(row_id, "wasted", now)
        return gone

    def _scores(self, now: float) -> dict[str, float]:
        return {m: s["score"] for m, s in self.learned.scores(now).items()}

    def _plan(self, wanted: list[tuple[str, float]], scores: dict[str, float], *, hysteresis: float,
              min_score: float, allow_victims: bool) -> list[PreloadStep]:
        infos = self._loaded_infos()
        residents = [Resident(i["model_id"], float(i["reserved_mb"]), bool(i.get("pinned")) or not allow_victims,
                              bool(i.get("in_flight") or i.get("leases")), i["device"], int(i.get("priority") or 0))
                     for i in infos]
        loaded = {r.model_id for r in residents}
        candidates, free = [], {}
        for model_id, score in wanted:
            if model_id in loaded or score < min_score:
                continue
            try:
                est = self.loader.estimate(model_id)
            except HubError as exc:          # unknown or unloadable (invalid file): never preloaded
                log.debug("no preload of %s: %s", model_id, exc)
                continue
            priority = int(getattr(self.loader.registry.get(model_id), "priority", 0) or 0)
            candidates.append(Candidate(model_id, score, float(est["total_mb"]), est["device"], priority))
            free[est["device"]] = self._free_mb(est)
        return plan_preloads(candidates, residents, free, scores, min_score=min_score, hysteresis=hysteresis)

    def _free_mb(self, estimate: dict[str, Any]) -> float:
        """Free budget on the estimate's device, counting memory other processes reserved."""
        try:
            device = self.loader.status()["devices"].get(estimate["device"])
        except Exception:        # status is diagnostics; the estimate's own figure is a safe fallback
            device = None
        free = float(estimate["free_mb"])
        return min(free, float(device["free_mb"])) if device else free

    def _apply(self, step: PreloadStep, reason: str) -> dict[str, Any]:
        """Unload the victims, load the model; a request for it that arrived meanwhile makes it ``late``
        (the request waited for this load: neither a hit nor wasted)."""
        with self._lock:
            started_seq = self._use_seq
        unloaded = []
        for victim in step.unload_first:
            entry = self.loader.entry(victim)
            if entry is not None and (entry.leases or not entry.worker.idle or entry.record.pinned):
                raise Conflict(f"model {victim} became busy; preload of {step.model_id} postponed")
            if self.loader.unload(victim, reason="preload"):
                unloaded.append(victim)
                self._victim_gone(victim)
        info = self.loader.load(step.model_id, evict=False, reason="preload")
        now = self.clock()
        with self._lock:
            late = self._last_use.get(step.model_id, 0) > started_seq
        with self._session.begin() as s:
            row = PreloadRow(model_id=step.model_id, version=info.get("version"), ts=now, score=step.score,
                             reason=reason, outcome="late" if late else "pending", resolved_at=now if late else None)
            s.add(row)
            s.flush()
            row_id = row.id
        if not late:
            with self._lock:
                self._pending[step.model_id] = row_id
        self.metrics.preloads.labels(reason).inc()
        fields = {"model_id": step.model_id, "version": info.get("version"), "device": info.get("device"),
                  "score": round(step.score, 6), "reason": reason, "unloaded": unloaded,
                  "reserved_mb": info.get("reserved_mb")}
        if self.events is not None:
            self.events.publish("model.preloaded", fields)
        return {"preloaded": True, "already_loaded": False, **fields}

    def _victim_gone(self, model_id: str) -> None:
        with self._lock:
            row_id = self._pending.pop(model_id, None)
        if row_id is not None:
            self._resolve(row_id, "wasted", self.clock())

    def _resolve(self, row_id: int, outcome: str, now: float) -> None:
        with self._session.begin() as s:
            s.execute(update(PreloadRow).where(PreloadRow.id == row_id, PreloadRow.outcome == "pending")
                      .values(outcome=outcome, resolved_at=now))
        if outcome == "wasted":
            self.metrics.wasted.inc()

    def _loaded_infos(self) -> list[dict[str, Any]]:
        return list(self.loader.loaded()) if self.loader is not None else []

    # -- stats ------------------------------------------------------------------------------------
    def stats(self) -> dict[str, Any]:
        requests = self.usage.request_counts()
        with self._session.begin() as s:
            outcomes = {k: int(v) for k, v in s.execute(select(PreloadRow.outcome, func.count())
                                                        .group_by(PreloadRow.outcome)).all()}
        hits, wasted = outcomes.get("hit", 0), outcomes.get("wasted", 0)
        with self._lock:
            pending = sorted(self._pending)
        total = requests["requests"]
        return {
            "requests": total, "hits": hits, "misses": requests["not_loaded"],
            "resident": max(0, requests["loaded"] - hits), "preloads": sum(outcomes.values()),
            "wasted": wasted, "pending": pending, "outcomes": outcomes,
            "hit_rate": round(requests["loaded"] / total, 4) if total else None,
            "preload_hit_rate": round(hits / (hits + wasted), 4) if hits + wasted else None,
            "usage_rows": self.usage.total(), "observations": self.learned.observations,
            "legacy_top": self.legacy_predictions(), "request_coordinator": self.notifier.status(),
        }

    # -- background -------------------------------------------------------------------------------
    def _background_round(self) -> float | None:
        """One round of the background task; soon again (settle_s) while a request is loading its model."""
        now = self.clock()
        periodic = now - self._last_round >= self.cfg.preload_interval_s
        if periodic:
            self._last_round = now
        try:
            self.run_once(now, periodic=periodic)
            if now - self._last_prune > 3600:
                self._last_prune = now
                self.usage.prune(now - self.cfg.retention_days * 86400)
        except Exception:    # the planner must survive a bad round (logged with its traceback)
            log.exception("preload round failed")
        return self.cfg.settle_s if self._deferred else None
