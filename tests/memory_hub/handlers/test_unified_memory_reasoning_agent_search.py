"""UnifiedMemoryReasoningAgent's search actions with the real all-MiniLM-L6-v2 model and a real SearchEngine
on migrated SQLite: semantic_search in each mode with filters, and get_context packing deduplicated memories
into a token budget.
"""
from __future__ import annotations

import os

import pytest

from agents.memory_hub.handlers.unified_memory_reasoning_agent import UnifiedMemoryReasoningAgent
from agents.memory_hub.reasoning import ReasoningSettings
from agents.memory_hub.search import Embedder, SearchEngine, SearchSettings
from agents.memory_hub.stores.sql import SqlStore
from agents.memory_hub.stores.sql_models import Memory
from bus.errors import BadRequest
from bus.handler import CallContext

pytestmark = pytest.mark.slow
os.environ.setdefault("HF_HUB_OFFLINE", "1")

MEMORIES = {
    "tea": ("Ana drinks green tea every morning before work.", "preference"),
    "tea-dup": ("Ana drinks green tea every morning before work!", "preference"),
    "dog": ("Our dog is called Biscuit and loves the park.", "fact"),
    "keys": ("The spare car key hangs in the hallway cupboard.", "fact"),
    "jazz": ("Bo is learning jazz piano on Saturdays.", "hobby"),
    "trip": ("The family trip to the mountains is planned for July.", "plan"),
}


@pytest.fixture(scope="module")
def agent(module_sql_url, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("umra-search")
    sql = SqlStore(module_sql_url)
    with sql.transaction() as session:
        for memory_id, (content, kind) in MEMORIES.items():
            session.add(Memory(memory_id=memory_id, content=content, memory_type=kind, namespace="home"))
    embedder = Embedder(threads=1)
    engine = SearchEngine(sql, embedder, SearchSettings(maintenance_interval_s=0), data_dir=tmp / "data")
    engine.start()
    engine.index_many([(memory_id, None) for memory_id in MEMORIES])
    yield UnifiedMemoryReasoningAgent(ReasoningSettings(), sql, engine)
    engine.close()
    embedder.close()
    sql.close()


def ctx(action: str) -> CallContext:
    return CallContext(agent="UnifiedMemoryReasoningAgent", action=action)


def search(agent, query, k=None, mode="hybrid", filters=None) -> dict:
    return agent.semantic_search({"query": query, "k": k, "mode": mode, "filters": filters}, ctx("semantic_search"))


@pytest.mark.parametrize("mode", ["vector", "hybrid"])
def test_semantic_search_finds_a_paraphrase(agent, mode):
    reply = search(agent, "what is the name of our pet", k=3, mode=mode)
    assert reply["mode"] == mode and reply["query"] == "what is the name of our pet"
    assert reply["results"][0]["memory_id"] == "dog"
    assert set(reply["results"][0]) == {"memory_id", "score", "vector_score", "keyword_score", "vector_rank", "memory"}


def test_keyword_mode_and_k_as_text(agent):
    reply = search(agent, "jazz piano", k="2", mode="keyword")
    assert reply["results"][0]["memory_id"] == "jazz" and len(reply["results"]) <= 2


def test_filters_apply(agent):
    reply = search(agent, "what does Ana drink", k=5, filters={"memory_type": "fact"})
    assert reply["results"] and {r["memory"]["memory_type"] for r in reply["results"]} == {"fact"}
    with pytest.raises(BadRequest):
        search(agent, "x", filters={"colour": "red"})


def test_get_context_packs_deduplicated_memories_into_the_budget(agent):
    packed = agent.get_context({"query": "Ana's morning tea", "token_budget": 40, "k": None, "mode": "hybrid",
                                "filters": None}, ctx("get_context"))
    ids = [m["memory_id"] for m in packed["memories"]]
    assert ids[0] in ("tea", "tea-dup") and not {"tea", "tea-dup"} <= set(ids)
    assert packed["duplicates_dropped"] >= 1
    assert packed["tokens"] <= 40 and packed["token_budget"] == 40
    assert packed["text"].splitlines()[0] == packed["memories"][0]["content"]


def test_get_context_default_budget(agent):
    packed = agent.get_context({"query": "family plans", "token_budget": None, "k": 3, "mode": "vector",
                                "filters": None}, ctx("get_context"))
    assert packed["token_budget"] == 2000 and len(packed["memories"]) <= 3
