"""Idempotent native calls: the store on a migrated SQLite file, then a real hub (ModelManagerSuite as a
process: its native writes are quick and need no embedding model) repeated, concurrent, and killed with -9.
"""
from __future__ import annotations

import threading
from pathlib import Path

import pytest

from bus.errors import BadRequest, Conflict
from bus.idempotency import IdempotencyStore, fingerprint
from migrations.runner import upgrade_to_head
from tests.support.hubproc import HubProcess
from agents.model_manager_suite.store import create_store_engine

MEF = "ModelEvaluationFramework"


@pytest.fixture
def store_and_clock(tmp_path: Path):
    url = f"sqlite:///{tmp_path / 'mms.db'}"
    upgrade_to_head(url, "model_manager_suite")
    engine = create_store_engine(url)
    now = [1000.0]
    store = IdempotencyStore(engine, "model_suite_idempotency", window_s=100.0, running_timeout_s=30.0,
                             clock=lambda: now[0])
    yield store, now
    engine.dispose()


def test_store_claims_once_replays_done_and_refuses_other_requests(store_and_clock):
    store, _now = store_and_clock
    first = fingerprint("A", "write", {"x": 1})
    assert store.begin("alice", "k1", first).state == "new"
    assert store.begin("alice", "k1", first).state == "running"          # the first run is not finished
    store.finish("alice", "k1", {"id": 7, "tags": ("a", "b")})
    replay = store.begin("alice", "k1", first)
    assert (replay.state, replay.result) == ("done", {"id": 7, "tags": ["a", "b"]})
    assert store.begin("alice", "k1", fingerprint("A", "write", {"x": 2})).state == "mismatch"
    assert store.begin("bob", "k1", first).state == "new"                # keys are per token subject


def test_store_window_abandon_and_stale_running_claims(store_and_clock):
    store, now = store_and_clock
    print_ = fingerprint("A", "write", {})
    store.begin("s", "done", print_)
    store.finish("s", "done", 1)
    store.begin("s", "failed", print_)
    store.abandon("s", "failed")                                         # an error reply: a retry runs again
    assert store.begin("s", "failed", print_).state == "new"
    now[0] += 31                                                         # `failed` claim is stale now
    assert store.begin("s", "failed", print_).state == "new"
    assert store.begin("s", "done", print_).state == "done"
    now[0] += 70                                                         # 101 s: past the 100 s window
    assert store.begin("s", "done", print_).state == "new"
    assert store.release_running() == 2                                  # at start: claims of a dead hub
    now[0] += 1000
    store.begin("s", "x", print_)
    assert store.purge() == 0                                            # `x` is new
    now[0] += 1000
    assert store.purge() == 1                                            # only `x`, older than the window


@pytest.fixture(scope="module")
def suite(tmp_path_factory):
    with HubProcess("model_manager_suite", tmp_path_factory.mktemp("idem"),
                    config={"predictive_loader": {"preload_enabled": False}}) as hub:
        yield hub


def metric(value: float, key: str | None = None) -> dict:
    args = {"agent_name": "idem-test", "metric_name": "latency", "value": value}
    if key is not None:
        args["idempotency_key"] = key
    return {"agent": MEF, "action": "log_performance_metric", "args": args}


def stored(client) -> list[dict]:
    return client.call(MEF, "get_performance_metrics", {"agent_name": "idem-test", "limit": 1000})["metrics"]


def test_a_repeated_key_answers_the_first_result_and_writes_once(suite):
    with suite.client() as client:
        before = len(stored(client))
        first = client.request(metric(1.5, "retry-1"))
        again = client.request(metric(1.5, "retry-1"))
        assert first["ok"] and again["ok"] and again["result"] == first["result"]
        assert again["replayed"] is True and "replayed" not in first
        assert len(stored(client)) == before + 1
        unkeyed = [client.call(MEF, "log_performance_metric", metric(2.0)["args"]) for _ in range(2)]
        assert unkeyed[0] != unkeyed[1] and len(stored(client)) == before + 3
        with pytest.raises(Conflict, match="different request"):
            client.call(MEF, "log_performance_metric", metric(9.9, "retry-1")["args"])
        with pytest.raises(BadRequest, match="idempotency_key"):
            client.call(MEF, "log_performance_metric", metric(1.0, "")["args"])
        with pytest.raises(BadRequest, match="not supported"):
            client.call("hub", "ping", {"idempotency_key": "k"})       # inline: answered on the loop


def test_concurrent_repeats_run_once(suite):
    replies: list[dict] = []

    def send() -> None:
        with suite.client() as client:
            replies.append(client.request(metric(3.25, "burst-1")))

    with suite.client() as client:
        before = len(stored(client))
        threads = [threading.Thread(target=send) for _ in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert len(replies) == 6 and all(r["ok"] for r in replies)
        assert len({r["result"]["metric_id"] for r in replies}) == 1
        assert len(stored(client)) == before + 1


def test_an_acknowledged_key_survives_kill_9(tmp_path):
    with HubProcess("model_manager_suite", tmp_path) as hub:
        with hub.client() as client:
            first = client.call(MEF, "log_performance_metric", metric(4.0, "durable-1")["args"])
        hub.kill9()
        hub.start()
        with hub.client() as client:
            again = client.request(metric(4.0, "durable-1"))
            assert again["ok"] and again["replayed"] and again["result"] == first
            assert len(stored(client)) == 1
