"""Usage log, the legacy heuristic (exact), the learned predictor against it on a daily-pattern trace,
and preloading on the real loader with tiny GGUF models: within budget, never a pinned or busy model,
hit / miss / waste accounting, events, the optional RequestCoordinator neighbour."""
from __future__ import annotations

import random
import threading
import time
from pathlib import Path

import pytest
import zmq
from prometheus_client import CollectorRegistry

from agents.model_manager_suite.predictor import (Candidate, LearnedPredictor, Resident, UsageLog, legacy_top,
                                                  PredictorSettings, plan_preloads)
from agents.model_manager_suite.preloader import Preloader
from bus.settings import from_mapping
from agents.model_manager_suite.rc_notifier import RequestCoordinatorNotifier
from bus.errors import Conflict
from tests.bench_predictor import simulate, synthetic_trace
from tests.support.tiny_gguf import write_tiny_gguf

TIGHT = {"overhead_mb": 100.0, "ram_budget_mb": 250}      # ~100 MB per tiny model, two fit
T0 = 1_790_000_000.0


class Clock:
    def __init__(self, now: float = T0):
        self.now = now

    def __call__(self) -> float:
        return self.now


# ------------------------------------------------------------------------------------------ legacy
def test_legacy_window_ranking_and_ties(store) -> None:
    usage = UsageLog(store.engine)
    # first-recorded order: old, b, a, c, d (old's usage is outside the window now)
    usage.record("old", T0 - 7200)
    for ts, model in [(T0 - 3000, "b"), (T0 - 2900, "a"), (T0 - 2800, "c"), (T0 - 2700, "d"),
                      (T0 - 100, "a"), (T0 - 50, "c"), (T0 - 3600, "b"), (T0 - 3599.5, "d")]:
        usage.record(model, ts)
    counts = usage.counts_since(T0 - 3600)
    # strictly inside the window (now - ts < 3600): b's usage at exactly 3600 s is out
    assert counts == [("b", 1), ("a", 2), ("c", 2), ("d", 2)]
    # a, c, d tie at 2: stable sort keeps first-recorded order; b (1) is fourth -> cut
    assert legacy_top(counts, 3) == ["a", "c", "d"]
    assert legacy_top([("x", 1), ("y", 1), ("z", 1), ("w", 5)]) == ["w", "x", "y"]


def test_legacy_prediction_survives_restart(store) -> None:
    clock = Clock()
    first = Preloader(PredictorSettings(), store.engine, None, clock=clock)
    for model in ["m1", "m2", "m2", "m3", "m4", "m4", "m4"]:
        first.record_usage(model, source="legacy")
    assert first.legacy_predictions() == ["m4", "m2", "m1"]
    again = Preloader(PredictorSettings(), store.engine, None, clock=clock)          # a hub restart: same database
    assert again.legacy_predictions() == ["m4", "m2", "m1"]
    clock.now += 3600
    assert again.legacy_predictions() == []


# ----------------------------------------------------------------------------------------- learned
def test_learned_beats_legacy_and_lru_on_daily_trace() -> None:
    trace = synthetic_trace(days=8, seed=11)
    lru, legacy, learned = (simulate(trace, p, warmup_days=2) for p in ("lru", "legacy", "learned"))
    assert learned["hit_rate"] > legacy["hit_rate"] + 0.1
    assert learned["hit_rate"] > lru["hit_rate"] + 0.1
    for result in (legacy, learned):
        assert result["peak_mb"] <= result["budget_mb"]


def test_learned_uses_transitions_and_time_of_day() -> None:
    predictor = LearnedPredictor(PredictorSettings(recency_weight=0.0, frequency_weight=0.0))
    day = 86400.0
    for d in range(5):
        for hour, seq in ((8, ["stt", "llm", "tts"]), (20, ["stt", "translator", "tts"])):
            t = T0 + d * day + hour * 3600
            for i, m in enumerate(seq * 3):
                predictor.observe(m, t + i * 10)
    morning = T0 + 5 * day + 8 * 3600
    evening = T0 + 5 * day + 20 * 3600
    assert predictor.predict(morning, 1, last="tts")[0][0] == "stt"
    top_morning = [m for m, _ in predictor.predict(morning, 2, last="stt")]
    top_evening = [m for m, _ in predictor.predict(evening, 2, last="stt")]
    assert top_morning[0] == "llm" and top_evening[0] == "translator"


def test_plan_never_exceeds_budget_nor_touches_pinned_or_busy() -> None:
    rng = random.Random(3)
    for _ in range(500):
        budget = rng.uniform(500, 4000)
        residents, used = [], 0.0
        for i in range(rng.randint(0, 5)):
            size = rng.uniform(50, 1500)
            if used + size > budget:
                break
            used += size
            residents.append(Resident(f"r{i}", size, pinned=rng.random() < 0.3, busy=rng.random() < 0.3,
                                      priority=rng.choice([0, 0, 5])))
        scores = {r.model_id: rng.random() for r in residents}
        candidates = [Candidate(f"c{i}", rng.random(), rng.uniform(50, 2000)) for i in range(rng.randint(1, 3))]
        scores.update({c.model_id: c.score for c in candidates})
        plan = plan_preloads(candidates, residents, {"cpu": budget - used}, scores, hysteresis=0.1)
        loaded = {r.model_id: r for r in residents}
        for step in plan:
            for victim in step.unload_first:
                r = loaded.pop(victim)
                assert not r.pinned and not r.busy and r.priority == 0
                assert scores[victim] < step.score
            loaded[step.model_id] = next(Resident(c.model_id, c.size_mb) for c in candidates
                                         if c.model_id == step.model_id)
            assert sum(r.size_mb for r in loaded.values()) <= budget + 1e-6


# ----------------------------------------------------------------------------- on the real loader
@pytest.fixture
def three_models(models_dir: Path) -> Path:
    write_tiny_gguf(models_dir / "tiny-b.gguf", seed=2, name="tiny b")
    write_tiny_gguf(models_dir / "tiny-c.gguf", seed=3, name="tiny c")
    return models_dir


def _preloader(suite, clock: Clock, **cfg) -> Preloader:
    settings = from_mapping(PredictorSettings, {"preload_top_n": 1, "min_score": 0.0, "hysteresis": 0.0, **cfg})
    return Preloader(settings, suite.store.engine, suite.loader, suite.events, CollectorRegistry(), clock=clock)


def _reserved(suite) -> float:
    return sum(m["reserved_mb"] for m in suite.loader.loaded())


def _teach(pre: Preloader, clock: Clock, sequence: list[str]) -> None:
    for model in sequence:
        clock.now += 5
        pre.learned.observe(model, clock.now)


def test_preload_predicted_model_and_count_hit(make_suite, three_models: Path) -> None:
    suite = make_suite(**TIGHT)
    clock = Clock()
    pre = _preloader(suite, clock)
    _teach(pre, clock, ["tiny-a", "tiny-b", "tiny-c"] * 6 + ["tiny-a"])
    suite.loader.load("tiny-a")
    assert pre.record_usage("tiny-a")["outcome"] == "resident"
    done = pre.run_once()
    assert [d["model_id"] for d in done] == ["tiny-b"]           # a is followed by b
    assert suite.loader.is_loaded("tiny-b")
    assert _reserved(suite) <= 250
    result = pre.record_usage("tiny-b")
    assert result == {"model_id": "tiny-b", "was_loaded": True, "outcome": "hit"}
    stats = pre.stats()
    assert (stats["hits"], stats["misses"], stats["wasted"], stats["preloads"]) == (1, 0, 0, 1)
    assert pre.metrics.hits._value.get() == 1
    events = [f for t, f in suite.events.events if t == "model.preloaded"]
    assert events and events[0]["model_id"] == "tiny-b" and events[0]["reason"] == "prediction"


def test_preload_unloads_only_idle_unpinned_and_stays_in_budget(make_suite, three_models: Path) -> None:
    suite = make_suite(**TIGHT)
    clock = Clock()
    pre = _preloader(suite, clock)
    _teach(pre, clock, ["tiny-a", "tiny-b", "tiny-c"] * 6 + ["tiny-a", "tiny-b"])   # next: c
    suite.loader.load("tiny-a", pin=True)
    suite.loader.load("tiny-b")
    with suite.loader.lease("tiny-b"):                              # b is busy: nothing may go
        assert pre.run_once() == []
    assert sorted(m["model_id"] for m in suite.loader.loaded()) == ["tiny-a", "tiny-b"]
    done = pre.run_once()                                           # b idle now: b goes, c comes; a is pinned
    assert [(d["model_id"], d["unloaded"]) for d in done] == [("tiny-c", ["tiny-b"])]
    assert sorted(m["model_id"] for m in suite.loader.loaded()) == ["tiny-a", "tiny-c"]
    assert _reserved(suite) <= 250


def test_wasted_and_missed_preloads_are_counted(make_suite, three_models: Path) -> None:
    suite = make_suite(**TIGHT)
    clock = Clock()
    pre = _preloader(suite, clock)
    _teach(pre, clock, ["tiny-a", "tiny-b"] * 5 + ["tiny-a"])
    assert pre.record_usage("tiny-c")["outcome"] == "miss"
    assert pre.run_once() == []                      # the request is still loading its model: no planning
    suite.loader.load("tiny-c")                      # ... as the request does
    pre.learned.observe("tiny-a", clock.now)
    assert [d["model_id"] for d in pre.run_once()] == ["tiny-b"]
    suite.loader.unload("tiny-b")
    assert pre.check_wasted() == ["tiny-b"]
    stats = pre.stats()
    assert (stats["hits"], stats["misses"], stats["wasted"]) == (0, 1, 1)
    assert pre.metrics.wasted._value.get() == 1 and pre.metrics.misses._value.get() == 1


def test_explicit_preload_route_semantics(make_suite, three_models: Path) -> None:
    suite = make_suite(**TIGHT)
    pre = _preloader(suite, Clock())
    suite.loader.load("tiny-a", pin=True)
    suite.loader.load("tiny-b", pin=True)
    with pytest.raises(Conflict):
        pre.preload("tiny-c")                                       # both residents pinned
    suite.registry.set_pinned("tiny-b", False)
    with pytest.raises(Conflict):
        pre.preload("tiny-c", evict=False)
    out = pre.preload("tiny-c")
    assert out["preloaded"] and out["unloaded"] == ["tiny-b"] and out["reason"] == "request"
    assert pre.preload("tiny-c")["already_loaded"] is True
    assert _reserved(suite) <= 250


def test_background_planner_preloads_after_a_request(make_suite, three_models: Path) -> None:
    suite = make_suite(**TIGHT)
    clock = Clock()
    pre = _preloader(suite, clock, settle_s=0.01, preload_interval_s=3600.0)
    _teach(pre, clock, ["tiny-a", "tiny-b"] * 5)
    suite.loader.load("tiny-a")
    pre.start()
    try:
        pre.record_usage("tiny-a")
        deadline = time.monotonic() + 60
        while not suite.loader.is_loaded("tiny-b") and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        pre.stop()
    assert suite.loader.is_loaded("tiny-b")
    assert [f["model_id"] for t, f in suite.events.events if t == "model.preloaded"] == ["tiny-b"]


# ------------------------------------------------------------------------ RequestCoordinator
def test_request_coordinator_gets_legacy_preload_requests() -> None:
    ctx = zmq.Context.instance()
    rep = ctx.socket(zmq.REP)
    port = rep.bind_to_random_port("tcp://127.0.0.1")
    received: list[dict] = []

    def serve() -> None:
        for _ in range(2):
            received.append(rep.recv_json())
            rep.send_json({"status": "success"})

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    notifier = RequestCoordinatorNotifier(f"tcp://127.0.0.1:{port}", timeout_ms=5000)
    try:
        assert notifier.send(["m1", "m2"]) == 2
    finally:
        notifier.close()
        thread.join(5)
        rep.close(linger=0)
    assert received == [{"action": "preload_model", "model_id": m, "priority": "low", "source": "PredictiveLoader"}
                        for m in ("m1", "m2")]


def test_request_coordinator_absent_backs_off() -> None:
    clock = Clock()
    ctx = zmq.Context.instance()
    probe = ctx.socket(zmq.REP)
    port = probe.bind_to_random_port("tcp://127.0.0.1")
    probe.close(linger=0)                                          # nobody listens there now
    notifier = RequestCoordinatorNotifier(f"tcp://127.0.0.1:{port}", timeout_ms=50, clock=clock)
    try:
        assert notifier.send(["m1"]) == 0
        first = notifier.next_attempt - clock.now
        assert notifier.send(["m1"]) == 0 and notifier.failures == 1      # still backing off: not tried
        clock.now = notifier.next_attempt
        assert notifier.send(["m1"]) == 0
        assert notifier.next_attempt - clock.now == pytest.approx(2 * first)
    finally:
        notifier.close()


def test_request_arriving_during_its_preload_is_late_not_hit_nor_waste(make_suite, three_models: Path) -> None:
    suite = make_suite(**TIGHT)
    clock = Clock()
    pre = _preloader(suite, clock)
    _teach(pre, clock, ["tiny-a", "tiny-b"] * 5 + ["tiny-a"])

    class RequestDuringLoad:
        """The loader's publisher: when the preloaded model is announced, its request arrives."""

        def publish(self, topic: str, fields: dict) -> None:
            if topic == "model.loaded" and fields["model_id"] == "tiny-b":
                pre.record_usage("tiny-b")

    suite.loader.publisher = RequestDuringLoad()
    assert [d["model_id"] for d in pre.run_once()] == ["tiny-b"]
    stats = pre.stats()
    assert stats["outcomes"] == {"late": 1} and stats["pending"] == [] and stats["wasted"] == 0
