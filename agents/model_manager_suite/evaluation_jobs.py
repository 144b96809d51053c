"""Evaluation jobs: perplexity, latency and tokens/s of one model, or an A/B comparison of two.

``EvalJobs.submit`` stores a ``queued`` job in SQL (``eval_jobs``) and returns its id at once; runner
threads (``job_workers``) take queued jobs oldest first. A job leases its model(s) from the loader
(loading them if needed, like any request) and runs every measurement on the model's own worker thread
(``eval_measure``), one text or prompt per worker call so other requests interleave. Progress is saved
after each step; ``eval.finished`` is published at the end (finished or failed).

Restarts: a graceful stop puts the running job back to ``queued`` (it is resumed from the start on the
next start); a job found ``running`` at start (the hub was killed) is marked ``failed`` with the error
"interrupted by restart". No job is silently lost.

Results attach to the model version: the job row keeps the model id, version and sha256 that were
actually evaluated (from the leased model). A finished single-model job also feeds the trust score:
it writes a ``model_evaluation_scores`` row (model_name = model id, cycle_id = eval id, trust_score by the
AgentTrustScorer formula 0.7·success_ratio + 0.3·max(0, 1 - ttft_s/5), avg_latency_ms = mean time to first
token) and ``performance_metrics`` rows (agent_name = model id; eval.perplexity, eval.ttft_ms,
eval.tokens_per_s), and, when ``trust_scorer_endpoint`` is set, sends AgentTrustScorer's legacy
``log_performance`` (success, response_time = ttft seconds) to it.
"""
from __future__ import annotations

import logging
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any
from collections.abc import Callable

from sqlalchemy import select, update
from sqlalchemy.engine import Engine
from sqlalchemy.orm import sessionmaker

from bus.periodic import PeriodicTask
from bus.errors import Conflict, HubError, NotFound
from bus.settings import setting

from .eval_models import EvalJobRow
from .eval_runs import JobInterrupted, feed_trust, run_ab, run_single
from .evaluation import EvaluationRecords

log = logging.getLogger(__name__)
ACTIVE = ("queued", "running")

@dataclass(frozen=True)
class EvaluationSettings:
    """Settings section ``model_evaluation`` (the evaluation job runner)."""
    job_workers: int = setting(1, minimum=1, maximum=64)     # evaluation jobs run at the same time
    logits_batch: int = setting(16, minimum=1, maximum=4096)  # positions per llama_decode when scoring (rows x vocab)
    max_tokens: int = setting(16, minimum=1)                 # tokens generated per prompt for latency / tokens/s
    bootstrap_samples: int = setting(2000, minimum=1)
    alpha: float = setting(0.05, minimum=0.0, maximum=1.0)   # significance level of the A/B verdict (sign test)
    trust_scorer_endpoint: str = ""     # e.g. tcp://pc2:7122: AgentTrustScorer log_performance feed; empty = off
    trust_scorer_timeout_ms: int = setting(2000, minimum=1)
    poll_interval_s: float = setting(1.0, minimum=0.01)      # runner idle poll (a submit wakes it at once)


class EvalJobs:
    def __init__(self, engine: Engine, loader: Any, events: Any, settings: EvaluationSettings,
                 *, clock: Callable[[], float] = time.time):
        self.cfg = settings
        self.loader, self.events, self.clock = loader, events, clock
        self.records = EvaluationRecords(engine)
        self._session = sessionmaker(engine, expire_on_commit=False)
        self._stop = threading.Event()      # also tells a running evaluation to end early
        self._wake = threading.Event()      # set on submit: every idle runner looks for the new job
        self._claim = threading.Lock()
        self._runners: list[PeriodicTask] = []

    # -- lifecycle ------------------------------------------------------------------------------
    def open(self) -> int:
        """Mark jobs left ``running`` by a killed hub as failed; returns how many."""
        now = self.clock()
        with self._session.begin() as s:
            result = s.execute(update(EvalJobRow).where(EvalJobRow.status == "running")
                               .values(status="failed", error="interrupted by restart", finished_at=now))
            return int(result.rowcount or 0)

    def start(self) -> None:
        if self._runners:
            return
        self._stop.clear()
        for index in range(self.cfg.job_workers):
            runner = PeriodicTask(f"eval-jobs-{index}", self.cfg.poll_interval_s, self._run_one, wake=self._wake,
                                  run_sets_delay=True)
            runner.start()
            self._runners.append(runner)

    def stop(self, timeout: float = 30.0) -> None:
        self._stop.set()
        for runner in self._runners:
            runner.stop(timeout)
        self._runners.clear()

    # -- API ------------------------------------------------------------------------------------
    def submit(self, model: str, params: dict[str, Any], compare_with: str | None = None) -> dict[str, Any]:
        """Queue a job; ``NotFound`` / ``Conflict`` at once for an unknown or unloadable model."""
        record = self._record(model)
        record_b = self._record(compare_with) if compare_with else None
        if record_b is not None and record_b.id == record.id:
            raise Conflict("an A/B comparison needs two different models")
        eval_id = str(uuid.uuid4())
        row = EvalJobRow(id=eval_id, kind="ab" if record_b else "evaluate", status="queued", model_id=record.id,
                         model_version=record.version, model_sha256=record.sha256, params=dict(params),
                         created_at=self.clock(),
                         model_b_id=record_b.id if record_b else None,
                         model_b_version=record_b.version if record_b else None,
                         model_b_sha256=record_b.sha256 if record_b else None)
        with self._session.begin() as s:
            s.add(row)
        self._wake.set()
        return {"eval_id": eval_id, "status": "queued", "kind": row.kind, "model_id": record.id,
                "model_b_id": row.model_b_id}

    def status(self, eval_id: str) -> dict[str, Any]:
        row = self._get(eval_id)
        return {"eval_id": row.id, "kind": row.kind, "status": row.status, "model_id": row.model_id,
                "model_version": row.model_version, "model_b_id": row.model_b_id, "progress": row.progress,
                "error": row.error, "created_at": row.created_at, "started_at": row.started_at,
                "finished_at": row.finished_at}

    def results(self, eval_id: str) -> dict[str, Any]:
        row = self._get(eval_id)
        return {**self.status(eval_id), "model_sha256": row.model_sha256, "model_b_version": row.model_b_version,
                "model_b_sha256": row.model_b_sha256, "params": row.params, "results": row.results}

    def list(self, model_id: str | None = None, limit: int = 20) -> list[dict[str, Any]]:
        query = select(EvalJobRow.id)
        if model_id:
            query = query.where((EvalJobRow.model_id == model_id) | (EvalJobRow.model_b_id == model_id))
        with self._session.begin() as s:
            ids = list(s.scalars(query.order_by(EvalJobRow.created_at.desc()).limit(limit)))
        return [self.status(i) for i in ids]

    def run_next(self) -> str | None:
        """Claim and run the oldest queued job on this thread; its id, or None when none is queued."""
        row = self._claim_next()
        if row is None:
            return None
        self._run(row)
        return row.id

    # -- runner ---------------------------------------------------------------------------------
    def _run_one(self) -> float | None:
        """A runner's pass: at once again after a job (more may be queued), else the poll interval. Nothing
        once ``stop`` began: a runner not yet joined would claim the job just requeued, load its model, requeue
        it again, in a loop."""
        if self._stop.is_set():
            return None
        try:
            if self.run_next() is not None:
                return 0.0
        except Exception:       # a runner must survive anything; the job itself is marked failed
            log.exception("evaluation runner failed")
        return None

    def _claim_next(self) -> EvalJobRow | None:
        with self._claim, self._session.begin() as s:
            row = s.scalars(select(EvalJobRow).where(EvalJobRow.status == "queued")
                            .order_by(EvalJobRow.created_at, EvalJobRow.id).limit(1)).first()
            if row is None:
                return None
            row.status, row.started_at, row.error = "running", self.clock(), None
            row.progress = {"phase": "starting"}
            return row

    def _run(self, row: EvalJobRow) -> None:
        progress = lambda info: self._save(row.id, progress=info)   # noqa: E731
        try:
            if row.kind == "ab":
                results = run_ab(self.loader, row, self.cfg, progress, self._stop)
            else:
                results = run_single(self.loader, row, self.cfg, progress, self._stop)
                results["trust"] = self._feed_trust(row, results)
        except JobInterrupted:
            self._save(row.id, status="queued", progress={"phase": "requeued after a hub stop"}, started_at=None)
            return
        except HubError as exc:
            self._finish(row, "failed", error=f"{exc.code}: {exc.message}")
            return
        except Exception as exc:    # a model that crashes llama.cpp, a bad tokenization: the job fails, kept
            log.exception("evaluation %s failed", row.id)
            self._finish(row, "failed", error=repr(exc))
            return
        self._finish(row, "finished", results=results)

    def _finish(self, row: EvalJobRow, status: str, *, results: dict | None = None, error: str | None = None) -> None:
        versions = (results or {}).get("versions") or {}
        fields: dict[str, Any] = {"status": status, "finished_at": self.clock(), "results": results, "error": error}
        for key in ("model_version", "model_sha256", "model_b_version", "model_b_sha256"):
            if versions.get(key):
                fields[key] = versions[key]
        self._save(row.id, **fields)
        if self.events is not None:
            self.events.publish("eval.finished", {"eval_id": row.id, "kind": row.kind, "status": status,
                                                  "model_id": row.model_id, "model_b_id": row.model_b_id,
                                                  "version": fields.get("model_version", row.model_version),
                                                  "error": error, "summary": (results or {}).get("summary")})
            if status == "failed":          # to the ErrorBus via the hub's `hub.error` observer
                self.events.publish("hub.error", {"error_type": "evaluation_failed", "severity": "ERROR",
                                                  "agent": "ModelEvaluationFramework",
                                                  "message": f"evaluation {row.id} of {row.model_id}: {error}"[:500],
                                                  "details": {"eval_id": row.id, "model_id": row.model_id}})

    def _feed_trust(self, row: EvalJobRow, results: dict[str, Any]) -> dict[str, Any]:
        return feed_trust(self.records, row, results, self.cfg)

    def _save(self, eval_id: str, **fields: Any) -> None:
        with self._session.begin() as s:
            s.execute(update(EvalJobRow).where(EvalJobRow.id == eval_id).values(**fields))

    def _get(self, eval_id: str) -> EvalJobRow:
        with self._session.begin() as s:
            row = s.get(EvalJobRow, eval_id)
        if row is None:
            raise NotFound(f"no evaluation job {eval_id}")
        return row

    def _record(self, model: str) -> Any:
        if self.loader is None:
            raise Conflict("no model loader in this hub")
        record = self.loader.registry.get(self.loader.resolve(model))
        if not record.valid:
            raise Conflict(f"model {record.id} cannot be evaluated: {record.reason}")
        return record
