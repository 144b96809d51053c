"""model_evaluation.db -> ModelManagerSuite, and CacheManager's Redis keys -> MemoryHub's cache (real redis-servers)."""
from __future__ import annotations

import json

import pytest
import redis
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session

from agents.memory_hub.stores.embedded_redis import EmbeddedRedis
from agents.model_manager_suite.store import default_database_url
from migrations.legacy.cache_redis import import_cache_redis
from migrations.legacy.common import ImportRefused
from migrations.legacy.model_evaluation import evaluation_models, import_model_evaluation
from tests.ops import legacy_fixtures as fx


def test_model_evaluation_round_trip_and_idempotent(tmp_path):
    try:
        models = evaluation_models()
    except ImportRefused as exc:
        pytest.skip(f"ModelManagerSuite evaluation tables not in this version: {exc}")
    legacy = fx.build_evaluation_db(tmp_path / "model_evaluation.db")
    url = default_database_url(tmp_path / "mms")
    report = import_model_evaluation(legacy, url)
    assert [(t.read, t.inserted, len(t.skipped)) for t in report.tables] == [(2, 2, 0), (2, 2, 0)]
    engine = create_engine(url)
    with Session(engine) as session:
        metrics = {m.metric_id: m for m in session.execute(select(models["performance_metrics"])).scalars()}
        scores = {e.evaluation_id: e for e in session.execute(select(models["model_evaluation_scores"])).scalars()}
    engine.dispose()
    for metric_id, agent, name, value, context in fx.METRICS:
        m = metrics[metric_id]
        assert (m.agent_name, m.metric_name, m.value, m.context) == (agent, name, value, context)
        assert _same_time(m.timestamp, fx.STAMP)
    for evaluation_id, model, cycle, trust, accuracy, f1, latency, comparison in fx.EVALUATIONS:
        e = scores[evaluation_id]
        assert (e.model_name, e.cycle_id, e.trust_score, e.accuracy, e.f1_score, e.avg_latency_ms,
                e.comparison_data) == (model, cycle, trust, accuracy, f1, latency, comparison)
        assert _same_time(e.evaluation_timestamp, fx.STAMP)
    again = import_model_evaluation(legacy, url)
    assert again.changed == 0 and [t.unchanged for t in again.tables] == [2, 2]
    dry = import_model_evaluation(legacy, default_database_url(tmp_path / "other"), dry_run=True)
    assert [t.inserted for t in dry.tables] == [2, 2]


def _same_time(stored, expected) -> bool:
    if isinstance(stored, str):
        return stored == expected.isoformat()
    if isinstance(stored, float):
        return stored == expected.timestamp()
    return stored == expected


@pytest.fixture
def legacy_redis(tmp_path):
    server = EmbeddedRedis(tmp_path / "legacy_redis")
    url = server.start()
    client = redis.Redis.from_url(url, db=0)
    client.setex("memory:mem-1", 3600, json.dumps({"content": "Miso likes tuna", "importance": 0.6}))
    client.setex("nlu_results:what time is it", 300, json.dumps({"intent": "time"}))
    client.set("tool_responses:weather", json.dumps("sunny"))                  # no TTL
    client.setex("custom_type:k1", 600, json.dumps([1, 2, 3]))
    client.setex("mem:mem-1", 3600, json.dumps({"memory_id": "mem-1"}))       # MOS cache of SQL rows
    client.rpush("nlu_results:a-list", "x")                                    # not a cached value
    client.close()
    yield f"{url}?db=0" if url.startswith("unix") else url
    server.stop()


def test_cache_keys_land_under_the_hubs_cache_prefix_and_twice_changes_nothing(tmp_path, legacy_redis):
    data_dir = tmp_path / "memory_hub"
    report = import_cache_redis(legacy_redis, None, data_dir=data_dir)      # the hub's embedded redis-server
    [table] = report.tables
    assert (table.read, table.inserted) == (6, 3)
    reasons = dict(table.skipped)
    assert reasons["custom_type:k1"] == "cache type 'custom_type' not selected (add --cache-type custom_type)"
    assert reasons["mem:mem-1"].startswith("MemoryOrchestratorService cache")
    assert reasons["nlu_results:a-list"] == "a Redis list, not a cached value"
    with EmbeddedRedis(data_dir) as url:
        hub = redis.Redis.from_url(url, db=0)
        assert json.loads(hub.get("cache:memory:mem-1")) == {"content": "Miso likes tuna", "importance": 0.6}
        assert json.loads(hub.get("cache:nlu_results:what time is it")) == {"intent": "time"}
        assert 0 < hub.pttl("cache:nlu_results:what time is it") <= 300_000
        assert 0 < hub.pttl("cache:tool_responses:weather") <= 900_000        # the type's TTL
        assert hub.zscore("cache:_lru:memory", "cache:memory:mem-1") is not None
        assert hub.get("cache:custom_type:k1") is None and hub.get("cache:mem:mem-1") is None
        hub.close()
    again = import_cache_redis(legacy_redis, None, data_dir=data_dir, cache_types=["custom_type"])
    assert (again.tables[0].inserted, again.tables[0].unchanged) == (1, 3)


def test_cache_dry_run_writes_nothing(tmp_path, legacy_redis):
    target = EmbeddedRedis(tmp_path / "target")
    url = target.start()
    try:
        report = import_cache_redis(legacy_redis, url, dry_run=True)
        assert report.tables[0].inserted == 3
        client = redis.Redis.from_url(url, db=0)
        assert client.dbsize() == 0
        client.close()
    finally:
        target.stop()


def test_unreachable_legacy_redis_is_refused(tmp_path):
    with pytest.raises(ImportRefused, match="not reachable"):
        import_cache_redis(f"unix://{tmp_path}/nothing.sock", None, data_dir=tmp_path / "hub")
