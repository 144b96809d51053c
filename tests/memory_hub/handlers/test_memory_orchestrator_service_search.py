"""Memory writes reach the search engine: MemoryOrchestratorService, SessionMemoryAgent and KnowledgeBase with
the real all-MiniLM-L6-v2 model and a real SearchEngine on migrated SQLite. Adds and batches are indexed,
updates re-indexed, deletes removed; semantic_search, search_interactions and search_facts rank by meaning.
"""
from __future__ import annotations

import os
import time

import pytest

from agents.memory_hub.handlers.knowledge_base import KnowledgeBase
from agents.memory_hub.handlers.memory_orchestrator_service import MemoryOrchestratorService
from agents.memory_hub.handlers.session_memory_agent import SessionMemoryAgent
from agents.memory_hub.memory_orchestrator_legacy import HYBRID, TEXT_FALLBACK
from agents.memory_hub.search import Embedder, SearchEngine, SearchSettings
from agents.memory_hub.stores.sql import SqlStore
from bus.errors import Unavailable
from bus.handler import CallContext

pytestmark = pytest.mark.slow
os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="module")
def embedder():
    model = Embedder(threads=1)
    model.start()
    yield model
    model.close()


@pytest.fixture
def hub(tmp_path, sql_url, embedder, compose_hub):
    sql = SqlStore(sql_url)
    engine = SearchEngine(sql, embedder, SearchSettings(maintenance_interval_s=0), data_dir=tmp_path / "data")
    engine.start()
    yield compose_hub(sql, search=engine)
    engine.close()
    sql.close()


def mos_call(mos, action, **data) -> dict:
    reply = mos.handle_legacy({"action": action, "data": data}, 7140)
    assert reply["status"] == "success", reply
    return reply


def top(mos, query, k=3, **data) -> list[str]:
    reply = mos_call(mos, "semantic_search", query=query, k=k, **data)
    assert reply["message"] == HYBRID and all("score" in r for r in reply["results"])
    return [r["content"] for r in reply["results"]]


def test_adds_updates_and_deletes_reach_the_index(hub):
    mos = hub.handler(MemoryOrchestratorService)
    tea = mos_call(mos, "add_memory", content="Ana drinks green tea every morning.")["memory_id"]
    mos_call(mos, "add_memory", content="The spare car key hangs in the hallway cupboard.")
    mos_call(mos, "batch_add_memories", memories=[{"content": "Our dog Biscuit loves the park."},
                                                  {"content": "Bo is learning jazz piano on Saturdays."}])
    assert top(mos, "hot beverage in the morning", k=1) == ["Ana drinks green tea every morning."]
    assert top(mos, "where is the key for the automobile", k=1)[0].startswith("The spare car key")
    assert top(mos, "a pet that enjoys walks", k=1) == ["Our dog Biscuit loves the park."]

    mos_call(mos, "update_memory", memory_id=tea, update_data={"content": "Ana swims in the lake every morning."})
    assert top(mos, "swimming outdoors", k=1) == ["Ana swims in the lake every morning."]
    assert "Ana drinks green tea every morning." not in top(mos, "hot beverage", k=4)

    mos_call(mos, "delete_memory", memory_id=tea)
    assert "Ana swims in the lake every morning." not in top(mos, "swimming outdoors", k=4)


def test_filters_pass_through(hub):
    mos = hub.handler(MemoryOrchestratorService)
    mos_call(mos, "add_memory", content="Tea grows on hillsides.", memory_type="fact")
    mos_call(mos, "add_memory", content="I would like some tea.", memory_type="wish")
    assert top(mos, "tea", k=5, filters={"memory_type": "wish"}) == ["I would like some tea."]


def test_session_and_knowledge_search_use_the_engine(hub):
    sma, kb = hub.handler(SessionMemoryAgent), hub.handler(KnowledgeBase)
    first = sma.handle_legacy({"action": "create_session", "user_id": "ana"}, 5574)["session_id"]
    second = sma.handle_legacy({"action": "create_session", "user_id": "bo"}, 5574)["session_id"]
    for session_id, text in ((first, "Can you book a table for dinner tonight?"),
                             (first, "Please play some relaxing music."),
                             (second, "Reserve a restaurant for two people.")):
        sma.handle_legacy({"action": "add_interaction", "session_id": session_id, "role": "user",
                           "content": text}, 5574)
    kb.handle_legacy({"action": "add_fact", "topic": "restaurants",
                      "content": "Luigi's serves pizza until 11pm."}, 5715)
    kb.handle_legacy({"action": "add_fact", "topic": "music", "content": "Jazz calms most listeners."}, 5715)

    found = sma.handle_legacy({"action": "search_interactions", "query": "restaurant reservation", "limit": 2}, 5574)
    assert {r["memory_type"] for r in found["results"]} == {"interaction"}
    assert found["results"][0]["content"] in ("Reserve a restaurant for two people.",
                                              "Can you book a table for dinner tonight?")
    scoped = sma.handle_legacy({"action": "search_interactions", "query": "restaurant reservation",
                                "session_id": first, "limit": 1}, 5574)["results"]
    assert [r["content"] for r in scoped] == ["Can you book a table for dinner tonight?"]

    facts = kb.handle_legacy({"action": "search_facts", "query": "soothing songs", "limit": 5}, 5715)["results"]
    assert facts[0]["content"] == "Jazz calms most listeners."
    assert {r["memory_type"] for r in facts} == {"knowledge_fact"}
    assert kb.handle_legacy({"action": "get_fact", "topic": "late-night food"}, 5715)["fact"]["content"] == \
        "Luigi's serves pizza until 11pm."


def test_while_the_model_loads_native_is_unavailable_at_its_deadline_and_legacy_falls_back(tmp_path, embedder,
                                                                                           compose_hub):
    sql = SqlStore(data_dir=tmp_path / "db")
    sql.migrate()
    engine = SearchEngine(sql, embedder, SearchSettings(maintenance_interval_s=0), data_dir=tmp_path / "data",
                          default_wait_s=0.2)
    engine.maintainer._start_lock.acquire()            # hold the start: the model is "loading"
    try:
        thread = engine.start_background()
        mos = compose_hub(sql, search=engine).handler(MemoryOrchestratorService)
        mos_call(mos, "add_memory", content="The garage door code is 4471.")
        reply = mos_call(mos, "semantic_search", query="How do I open where the car is parked?", k=3)
        assert reply["message"] == TEXT_FALLBACK                   # legacy: the hub default deadline passed
        ctx = CallContext("MemoryOrchestratorService", "semantic_search", deadline=time.monotonic() + 0.3)
        with pytest.raises(Unavailable) as err:
            mos.semantic_search({"query": "How do I open where the car is parked?", "k": 3, "filters": None}, ctx)
        assert err.value.retryable and err.value.retry_after_ms > 0
    finally:
        engine.maintainer._start_lock.release()
    thread.join(timeout=60)
    assert top(mos, "How do I open where the car is parked?") == ["The garage door code is 4471."]
    engine.close()
    sql.close()
