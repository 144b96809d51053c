"""AgentTrustScorer domain: the legacy trust formula, scores in SQL, the native trust policy and call feeding.

Formula (legacy, kept exactly): after each logged interaction

    score = 0.7 * successful / total + 0.3 * max(0, 1 - response_time / 5.0)

where ``response_time`` is the latest interaction's only (no average). Unknown ids score 0.5.

Legacy writes (``log_performance`` on 7122/5626 carries no token) are limited (issue 18): each one moves the
stored score at most ``trust.legacy_max_step`` from its previous value (towards the formula's result), and
each peer address may write ``trust.legacy_writes_per_peer`` times per ``trust.legacy_window_s``. So an
unauthenticated client can no longer set a subject's score to 0.0 or 1.0 in one message: from 0.5 it takes
at least 5 writes with the default step, and a flood is refused. ``legacy_max_step: 1.0`` gives the exact
legacy formula. Native writes need a token with the AgentTrustScorer scope and use the formula unbounded.

Native trust policy (``TrustPolicy``, an ``Assembly`` policy): settings ``trust.min_score`` maps
``"Agent.action"`` (or ``"Agent.*"``) to the minimum score the caller's ``sub`` must have; below it the call
is ``forbidden``. The policy runs for every authenticated call on the router thread, so it never reads SQL
there: when gates are configured every score is held in memory, loaded at start, reloaded by a background task every
``trust.cache_s`` and updated at once by writes made in this process (``invalidate`` re-reads one subject,
on the writer's thread). A subject without a row scores 0.5, as in SQL.

Call feeding (``CallFeeder``, an ``Assembly`` after_call hook): when ``trust.feed_calls`` is true, every
authenticated native call is logged as an interaction of its caller's ``sub`` (success unless the outcome is
the caller's fault: bad_request, unknown_action, unauthorized, forbidden, too_large), with response_time 0 (the hub's
latency is not the caller's doing). Writes go through a bounded queue to one background thread; when
the queue is full the oldest pending interaction is dropped and counted.
"""
from __future__ import annotations

import contextlib
import queue
import threading
import time
from dataclasses import dataclass, field
from typing import Any
from collections.abc import Callable

from sqlalchemy import select

from bus.errors import Forbidden, HubError
from bus.handler import Principal
from bus.log import get_logger
from bus.periodic import PeriodicTask
from bus.settings import SettingError, setting

log = get_logger("memory_hub.trust")

DEFAULT_SCORE = 0.5
MAX_RESPONSE_TIME_S = 5.0
CALLER_FAULTS = frozenset({"bad_request", "unknown_action", "unauthorized", "forbidden", "too_large"})

@dataclass(frozen=True)
class TrustSettings:
    """The ``trust`` section."""

    # {"Agent.action" | "Agent.*": minimum score of the caller's sub}
    min_score: dict[str, float] = field(default_factory=dict)
    exempt_subjects: tuple[str, ...] = setting((), doc="subjects never gated (e.g. the operator's admin token)")
    feed_calls: bool = setting(False, doc="log every authenticated native call as an interaction of its caller")
    feed_queue: int = setting(10000, minimum=1, doc="pending fed interactions before the oldest is dropped")
    cache_s: float = setting(5.0, minimum=0.01, doc="how often the policy's in-memory scores are reloaded from SQL")
    legacy_max_step: float = setting(0.1, minimum=0.0, maximum=1.0,
                                     doc="a legacy log_performance moves a score at most this much (1.0 = legacy)")
    legacy_writes_per_peer: int = setting(60, minimum=1, doc="legacy log_performance per peer per legacy_window_s")
    legacy_window_s: float = setting(60.0, minimum=0.001)

    def __post_init__(self) -> None:
        for key, value in self.min_score.items():
            agent, _, act = key.partition(".")
            if not agent or not act:
                raise SettingError("min_score", f"key {key!r} must be 'Agent.action' or 'Agent.*'")
            if not 0.0 <= value <= 1.0:
                raise SettingError(f"min_score.{key}", f"must be a number between 0 and 1, got {value!r}")


def legacy_trust_score(successful: int, total: int, response_time: float) -> float:
    """The legacy formula (legacy-protocol.md §2.8)."""
    base_score = successful / total
    time_factor = max(0.0, 1.0 - (float(response_time) / MAX_RESPONSE_TIME_S))
    return (base_score * 0.7) + (time_factor * 0.3)


class TrustStore:
    """``trust_scores`` and ``performance_logs`` in SQL (``sql`` is a ``SqlStore``)."""

    def __init__(self, sql: Any):
        self.sql = sql

    def log_performance(self, model_id: str, success: bool, response_time: float = 0.0,
                        error_message: str | None = None, max_step: float = 1.0) -> float:
        """Record one interaction and return the new score (one write transaction); the score moves at most
        ``max_step`` from its previous value."""
        from agents.memory_hub.stores.sql_models import PerformanceLog, TrustScore

        now = time.time()
        with self.sql.transaction() as session:
            row = session.get(TrustScore, model_id)
            if row is None:
                row = TrustScore(model_id=model_id, trust_score=DEFAULT_SCORE, total_interactions=0,
                                 successful_interactions=0)
                session.add(row)
            row.total_interactions = (row.total_interactions or 0) + 1
            row.successful_interactions = (row.successful_interactions or 0) + (1 if success else 0)
            previous = DEFAULT_SCORE if row.trust_score is None else float(row.trust_score)
            target = legacy_trust_score(row.successful_interactions, row.total_interactions, response_time)
            row.trust_score = previous + max(-max_step, min(max_step, target - previous))
            row.last_updated = now
            session.add(PerformanceLog(model_id=model_id, success=bool(success), response_time=float(response_time),
                                       error_message=error_message or None, timestamp=now))
            return float(row.trust_score)

    def get_trust_score(self, model_id: str) -> float:
        from agents.memory_hub.stores.sql_models import TrustScore

        with self.sql.session() as session:
            row = session.get(TrustScore, model_id)
            return float(row.trust_score) if row is not None else DEFAULT_SCORE

    def all_scores(self) -> dict[str, float]:
        from agents.memory_hub.stores.sql_models import TrustScore

        with self.sql.session() as session:
            return {model_id: float(score) for model_id, score in
                    session.execute(select(TrustScore.model_id, TrustScore.trust_score)).all()}

    def get_record(self, model_id: str) -> dict[str, Any] | None:
        from agents.memory_hub.stores.sql_models import TrustScore

        with self.sql.session() as session:
            row = session.get(TrustScore, model_id)
            if row is None:
                return None
            return {"trust_score": float(row.trust_score), "total_interactions": row.total_interactions,
                    "successful_interactions": row.successful_interactions, "last_updated": row.last_updated}

    def get_history(self, model_id: str, limit: int = 10) -> list[dict[str, Any]]:
        """Newest first: ``[{success, response_time, timestamp (epoch), error_message}]``."""
        from agents.memory_hub.stores.sql_models import PerformanceLog

        query = (select(PerformanceLog).where(PerformanceLog.model_id == model_id)
                 .order_by(PerformanceLog.timestamp.desc(), PerformanceLog.id.desc()).limit(limit))
        with self.sql.session() as session:
            return [{"success": bool(row.success), "response_time": row.response_time, "timestamp": row.timestamp,
                     "error_message": row.error_message} for row in session.scalars(query)]


class TrustPolicy:
    """``policy(principal, agent, action)``: raises ``Forbidden`` when the caller's score is too low."""

    def __init__(self, store: TrustStore | None, section: TrustSettings):
        self.store = store
        self.min_score = dict(section.min_score)
        self.exempt = set(section.exempt_subjects)
        self.cache_s = section.cache_s
        self._scores: dict[str, float] = {}
        self._lock = threading.Lock()
        self._refresher: PeriodicTask | None = None
        if store is not None and self.min_score:
            self.refresh()
            self._refresher = PeriodicTask("trust-scores", self.cache_s, self.refresh)
            self._refresher.start()

    def required(self, agent: str, action: str) -> float | None:
        return self.min_score.get(f"{agent}.{action}", self.min_score.get(f"{agent}.*"))

    def __call__(self, principal: Principal, agent: str, action: str) -> None:
        required = self.required(agent, action)
        if required is None or principal.subject in self.exempt:
            return
        score = self.score(principal.subject)
        if score < required:
            raise Forbidden(f"trust score {score:.3f} of '{principal.subject}' is below the {required:.3f} "
                            f"required for {agent}.{action}")

    def score(self, subject: str) -> float:
        with self._lock:
            return self._scores.get(subject, DEFAULT_SCORE)

    def refresh(self) -> None:
        """Reload every score (background task; also once at start)."""
        if self.store is not None:
            scores = self.store.all_scores()
            with self._lock:
                self._scores = scores

    def invalidate(self, subject: str) -> None:
        """Re-read one subject after a write (runs on the writer's thread, never the router's)."""
        if self.store is None or not self.min_score:
            return
        score = self.store.get_trust_score(subject)
        with self._lock:
            self._scores[subject] = score

    def stop(self) -> None:
        if self._refresher is not None:
            self._refresher.stop(2.0)


class CallFeeder:
    """``feeder(principal, agent, action, outcome)``: queue the call as an interaction of its caller."""

    def __init__(self, store: TrustStore | None, section: TrustSettings,
                 on_scored: Callable[[str], None] | None = None):
        self.enabled = section.feed_calls and store is not None
        self.store = store
        self.on_scored = on_scored
        self.dropped = 0
        self.fed = 0
        self._queue: queue.Queue = queue.Queue(maxsize=section.feed_queue)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()

    def __call__(self, principal: Principal | None, agent: str, action: str, outcome: str,
                 duration_s: float = 0.0) -> None:
        if not self.enabled or principal is None or principal.subject == "anonymous" or self._stop.is_set():
            return
        self._ensure_thread()
        item = (principal.subject, outcome not in CALLER_FAULTS, f"{agent}.{action}: {outcome}")
        try:
            self._queue.put_nowait(item)
        except queue.Full:
            with contextlib.suppress(queue.Empty):
                self._queue.get_nowait()
            self.dropped += 1
            self._queue.put_nowait(item)

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until every queued interaction is written (tests, shutdown)."""
        until = time.monotonic() + timeout
        while self._queue.unfinished_tasks and time.monotonic() < until:
            time.sleep(0.01)
        return not self._queue.unfinished_tasks

    def stop(self) -> None:
        self.flush(2.0)
        self._stop.set()
        if self._thread is not None:
            self._thread.join(2.0)

    def _ensure_thread(self) -> None:
        if self._thread is None:
            with self._start_lock:
                if self._thread is None:
                    self._thread = threading.Thread(target=self._run, name="trust-feeder", daemon=True)
                    self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                subject, success, note = self._queue.get(timeout=0.2)
            except queue.Empty:
                continue
            try:
                self.store.log_performance(subject, success, 0.0, None if success else note)
                self.fed += 1
                if self.on_scored is not None:
                    self.on_scored(subject)
            except HubError as err:
                log.warning("trust_feed_failed", subject=subject, error=err.message)
            finally:
                self._queue.task_done()
