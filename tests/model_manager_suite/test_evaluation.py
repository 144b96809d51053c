"""ModelEvaluationFramework domain: legacy records validated as the legacy pydantic models, perplexity from
the model's logits (checked against llama-cpp-python's logits_all), evaluation and A/B jobs end to end on
tiny GGUF models, jobs across restarts, and the 0002 tables agreeing with their models."""
from __future__ import annotations

import math
import threading
import uuid
from pathlib import Path

import numpy as np
import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, inspect

from agents.model_manager_suite.eval_measure import (paired_bootstrap, sign_test, text_nll, timed_generation,
                                                     tokenize, windows)
from agents.model_manager_suite.eval_models import EVAL_TABLES, EvalJobRow
from agents.model_manager_suite.eval_runs import JobInterrupted, run_single
from agents.model_manager_suite.evaluation import EvaluationRecords
from agents.model_manager_suite.evaluation_jobs import EvalJobs, EvaluationSettings
from agents.model_manager_suite.sql_models import full_metadata
from bus.errors import BadRequest, Conflict, NotFound
from migrations.runner import upgrade_to_head
from tests.support.tiny_gguf import write_not_gguf, write_tiny_gguf

CYCLE = "123e4567-e89b-12d3-a456-426614174001"


def test_revision_0002_creates_exactly_the_eval_tables(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'm.db'}"
    upgrade_to_head(url, "model_manager_suite")
    engine = create_engine(url)
    try:
        assert set(EVAL_TABLES) <= set(inspect(engine).get_table_names())
        with engine.connect() as conn:
            ctx = MigrationContext.configure(conn, opts={"compare_type": True})
            diffs = [d for d in compare_metadata(ctx, full_metadata())
                     if not (d[0] == "remove_table" and d[1].name.startswith("alembic_version"))]
        assert diffs == []
    finally:
        engine.dispose()


# ------------------------------------------------------------------------------------ records
def test_metrics_roundtrip_newest_first_and_filters(store) -> None:
    rec = EvaluationRecords(store.engine)
    first = rec.log_metric({"agent_name": "ChitChat", "metric_name": "response_time_ms", "value": 245.7,
                            "timestamp": "2026-01-01T12:00:00", "context": {"request_id": "r1"}})
    second = rec.log_metric({"agent_name": "ChitChat", "metric_name": "response_time_ms", "value": 120,
                             "timestamp": "2026-01-02T12:00:00"})
    rec.log_metric({"agent_name": "Other", "metric_name": "cpu", "value": 3})
    uuid.UUID(first)
    rows = rec.metrics("ChitChat")
    assert [r["metric_id"] for r in rows] == [second, first]
    assert rows[1] == {"metric_id": first, "agent_name": "ChitChat", "metric_name": "response_time_ms",
                       "value": 245.7, "timestamp": "2026-01-01T12:00:00", "context": {"request_id": "r1"}}
    assert len(rec.metrics(limit=1)) == 1 and len(rec.metrics(limit=-1)) == 3
    assert rec.metrics(metric_name="cpu")[0]["agent_name"] == "Other"
    given = str(uuid.uuid4())
    assert rec.log_metric({"agent_name": "a", "metric_name": "m", "value": 1, "metric_id": given}) == given
    with pytest.raises(Conflict, match="UNIQUE constraint failed"):
        rec.log_metric({"agent_name": "a", "metric_name": "m", "value": 1, "metric_id": given})
    assert rec.stats()["performance_logs"] == 4


def test_evaluations_validated_like_the_legacy_models(store) -> None:
    rec = EvaluationRecords(store.engine)
    good = {"model_name": "m", "cycle_id": CYCLE, "trust_score": 0.9, "accuracy": 0.8, "f1_score": 0.7,
            "avg_latency_ms": 120.5, "comparison_data": {"previous_version": "v1"}}
    evaluation_id = rec.log_evaluation(good)
    row = rec.evaluations("m")[0]
    assert row["evaluation_id"] == evaluation_id and row["cycle_id"] == CYCLE and row["trust_score"] == 0.9
    bad = [({"trust_score": 1.5}, "trust_score"), ({"trust_score": -0.1}, "trust_score"),
           ({"accuracy": 1.2}, "accuracy"), ({"f1_score": -1}, "f1_score"), ({"cycle_id": "nope"}, "cycle_id"),
           ({"avg_latency_ms": -3}, "avg_latency_ms"), ({"trust_score": float("nan")}, "trust_score"),
           ({"model_name": 7}, "model_name")]
    for change, field in bad:
        with pytest.raises(BadRequest, match=field):
            rec.log_evaluation({**good, **change})
    missing = dict(good)
    del missing["avg_latency_ms"]
    with pytest.raises(BadRequest, match="avg_latency_ms\n  Field required"):
        rec.log_evaluation(missing)
    with pytest.raises(BadRequest, match="must be a mapping"):
        rec.log_evaluation("not a dict")
    assert rec.stats() == {"performance_logs": 0, "trust_score_updates": 1, "models_tracked": 1}


# ----------------------------------------------------------------------------------- measures
def test_windows_score_every_position_once() -> None:
    for n_tokens, n_ctx in [(1, 8), (2, 8), (8, 8), (9, 8), (100, 8), (100, 7), (5, 2)]:
        scored: list[int] = []
        for start, end, first in windows(n_tokens, n_ctx, 1):
            assert end - start <= n_ctx and start < first <= end
            scored.extend(range(first, end))
        assert scored == list(range(1, n_tokens))


def test_statistics() -> None:
    assert sign_test([1, 1, 1, 1, 1, 1, 1, 1])["p_value"] == pytest.approx(2 / 256)
    assert sign_test([1, -1, 0])["p_value"] == 1.0 and sign_test([1, -1, 0])["ties"] == 1
    boot = paired_bootstrap([0.5, 0.6, 0.4, 0.55, 0.45], samples=500)
    assert boot["mean_diff"] == pytest.approx(0.5) and boot["ci95"][0] > 0 and boot["p_value"] == 0.0


def test_perplexity_matches_llama_cpp_logits_all(tmp_path: Path) -> None:
    from llama_cpp import Llama

    path = str(write_tiny_gguf(tmp_path / "m.gguf", seed=5))
    text = "hello world, the model is a test and it is the world of the test."
    reference = Llama(model_path=path, n_ctx=256, n_threads=1, logits_all=True, verbose=False)
    tokens = tokenize(reference, text)
    reference.eval(tokens)
    scores = reference.scores[: len(tokens)].astype(np.float64)
    expected = 0.0
    for i in range(len(tokens) - 1):
        row = scores[i]
        expected += row.max() + math.log(np.exp(row - row.max()).sum()) - row[tokens[i + 1]]
    reference.close()
    llm = Llama(model_path=path, n_ctx=256, n_threads=1, verbose=False)   # as the hub loads models
    nll, count = text_nll(llm, tokens, 1, batch_rows=5)
    assert count == len(tokens) - 1 and nll == pytest.approx(expected, rel=1e-6)
    timing = timed_generation(llm, tokens[:6], 5)
    assert timing["tokens"] == 5 and timing["ttft_s"] > 0 and timing["tokens_per_s"] > 0
    assert text_nll(llm, tokens, 1)[0] == pytest.approx(expected, rel=1e-6)   # state was restored
    llm.close()


# --------------------------------------------------------------------------------------- jobs
@pytest.fixture
def two_models(models_dir: Path) -> Path:
    write_tiny_gguf(models_dir / "tiny-b.gguf", seed=2, name="tiny b")
    write_not_gguf(models_dir / "broken.gguf")
    return models_dir


def _jobs(suite) -> EvalJobs:
    return EvalJobs(suite.store.engine, suite.loader, suite.events,
                    EvaluationSettings(max_tokens=4, bootstrap_samples=200))


def test_evaluation_job_end_to_end(make_suite, two_models: Path) -> None:
    suite = make_suite()
    jobs = _jobs(suite)
    queued = jobs.submit("tiny-a", {"texts": ["the world is a test.", "hello world, it is the model."],
                                    "prompts": ["hello", "the test"]})
    assert queued["status"] == "queued" and jobs.status(queued["eval_id"])["status"] == "queued"
    assert jobs.run_next() == queued["eval_id"]
    out = jobs.results(queued["eval_id"])
    assert out["status"] == "finished", out["error"]
    record = suite.registry.get("tiny-a")
    assert (out["model_version"], out["model_sha256"]) == (record.version, record.sha256)
    res = out["results"]
    assert math.isfinite(res["perplexity"]["value"]) and res["perplexity"]["value"] > 1
    assert res["perplexity"]["tokens"] == sum(t["tokens"] for t in res["perplexity"]["texts"]) > 0
    assert res["latency"]["tokens_per_s"]["mean"] > 0 and res["latency"]["ttft_ms"]["mean"] > 0
    assert all(p["tokens"] == 4 for p in res["latency"]["prompts"])
    trust = res["trust"]
    assert 0 < trust["trust_score"] <= 1 and len(trust["metric_ids"]) == 3
    mef = jobs.records.evaluations("tiny-a")[0]
    assert mef["evaluation_id"] == trust["evaluation_id"] and mef["cycle_id"] == queued["eval_id"]
    assert mef["comparison_data"]["sha256"] == record.sha256
    finished = [f for t, f in suite.events.events if t == "eval.finished"]
    assert finished[-1]["eval_id"] == queued["eval_id"] and finished[-1]["status"] == "finished"
    assert jobs.list("tiny-a")[0]["eval_id"] == queued["eval_id"]


def test_ab_job_on_two_tiny_models(make_suite, two_models: Path) -> None:
    suite = make_suite()
    jobs = _jobs(suite)
    prompts = ["the world is a test", {"prompt": "hello", "reference": " world."},
               {"prompt": "it is", "reference": " the model."}]
    eval_id = jobs.submit("tiny-a", {"prompts": prompts}, compare_with="tiny-b")["eval_id"]
    jobs.run_next()
    out = jobs.results(eval_id)
    assert out["status"] == "finished", out["error"]
    assert out["kind"] == "ab" and out["model_b_sha256"] == suite.registry.get("tiny-b").sha256
    per = out["results"]["per_prompt"]
    assert len(per) == 3 and all(math.isfinite(p["score_a"]) and math.isfinite(p["score_b"]) for p in per)
    assert all(p["diff"] == pytest.approx(p["score_a"] - p["score_b"]) for p in per)
    summary = out["results"]["summary"]
    assert 0 <= summary["sign_test"]["p_value"] <= 1 and 0 <= summary["bootstrap"]["p_value"] <= 1
    assert summary["significant"] is False and summary["winner"] is None     # 3 prompts cannot reach 0.05


def test_refused_jobs(make_suite, two_models: Path) -> None:
    jobs = _jobs(make_suite())
    with pytest.raises(NotFound):
        jobs.submit("no-such-model", {})
    with pytest.raises(Conflict):
        jobs.submit("broken", {})
    with pytest.raises(Conflict):
        jobs.submit("tiny-a", {}, compare_with="tiny-a")
    with pytest.raises(NotFound):
        jobs.status("nope")


def test_jobs_survive_restarts(make_suite, two_models: Path) -> None:
    suite = make_suite()
    jobs = _jobs(suite)
    killed = jobs.submit("tiny-a", {"texts": ["a test."], "prompts": ["hi"]})["eval_id"]
    waiting = jobs.submit("tiny-a", {"texts": ["a test."], "prompts": ["hi"]})["eval_id"]
    with jobs._session.begin() as s:                       # as a kill -9 mid-job leaves it
        s.get(EvalJobRow, killed).status = "running"
    again = _jobs(suite)                                    # the next hub start
    assert again.open() == 1
    assert again.status(killed)["status"] == "failed" and again.status(killed)["error"] == "interrupted by restart"
    stopping = threading.Event()
    stopping.set()                                          # a graceful stop while the job runs: requeued
    row = again._claim_next()
    with pytest.raises(JobInterrupted):
        run_single(suite.loader, row, again.cfg, lambda _p: None, stopping)
    again._save(row.id, status="queued", started_at=None)
    assert again.status(waiting)["status"] == "queued"
    assert again.run_next() == waiting and again.status(waiting)["status"] == "finished"


def test_runner_thread_requeues_on_stop(make_suite, two_models: Path) -> None:
    suite = make_suite()
    jobs = _jobs(suite)
    eval_id = jobs.submit("tiny-a", {"texts": ["a test."] * 64, "prompts": ["hi"]})["eval_id"]
    jobs.start()
    jobs.stop()
    status = jobs.status(eval_id)["status"]
    assert status in ("queued", "finished")                # never left running, never lost


def test_no_job_is_claimed_once_stop_began(make_suite, two_models: Path) -> None:
    suite = make_suite()
    jobs = _jobs(suite)
    eval_id = jobs.submit("tiny-a", {"texts": ["a test."], "prompts": ["hi"]})["eval_id"]
    jobs.stop()                   # the runners are joined one by one: a pass of one not yet joined claims nothing
    assert jobs._run_one() is None
    assert jobs.status(eval_id)["status"] == "queued" and not suite.loader.is_loaded("tiny-a")


@pytest.mark.slow
def test_gemma_perplexity_is_that_of_a_language_model(make_suite, gemma_path: Path) -> None:
    """The real gemma-3-270m: English text is far more predictable to it than to a random tiny model."""
    suite = make_suite([gemma_path.parent], n_ctx=512, n_threads=2)
    jobs = _jobs(suite)
    model_id = suite.registry.list()[0].id
    eval_id = jobs.submit(model_id, {"prompts": ["The capital of France is"]})["eval_id"]
    jobs.run_next()
    out = jobs.results(eval_id)
    assert out["status"] == "finished", out["error"]
    perplexity = out["results"]["perplexity"]["value"]
    assert 1.0 < perplexity < 200.0
    assert out["results"]["latency"]["tokens_per_s"]["mean"] > 0
