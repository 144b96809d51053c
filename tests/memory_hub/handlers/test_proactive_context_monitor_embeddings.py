"""ProactiveContextMonitor with the real all-MiniLM-L6-v2 embedder and SearchEngine: topic shifts by cosine
similarity and related memories by vector search."""
from __future__ import annotations

import pytest

from agents.memory_hub.context_monitor import ContextMonitorSettings
from agents.memory_hub.handlers.proactive_context_monitor import ProactiveContextMonitor
from agents.memory_hub.search.embedder import Embedder
from agents.memory_hub.search.engine import SearchEngine
from agents.memory_hub.search.settings import SearchSettings
from agents.memory_hub.stores.sql_models import Memory
from bus.events import NullPublisher
from bus.settings import from_mapping

pytestmark = pytest.mark.slow

LOOSE = {topic: {"rate_per_s": 1000.0, "burst": 1000}
         for topic in ("context.added", "context.changed", "context.suggestion")}


@pytest.fixture(scope="module")
def embedder():
    model = Embedder(threads=2)
    model.start()
    yield model
    model.close()


@pytest.fixture
def pcm(tmp_path, sql_store, embedder):
    with sql_store.transaction() as session:
        for memory_id, content in (("m-cook", "Grandma's recipe: simmer tomatoes with garlic for the pasta sauce"),
                                   ("m-car", "The car's winter tires are stored in the garage")):
            session.add(Memory(memory_id=memory_id, content=content))
    search = SearchEngine(sql_store, embedder, SearchSettings(maintenance_interval_s=0, snapshot_path=""))
    search.start()
    search.index_many([("m-cook", None), ("m-car", None)])
    section = from_mapping(ContextMonitorSettings, {"rate_limits": LOOSE, "poll_interval_s": 60.0})
    handler = ProactiveContextMonitor(section, NullPublisher(), sql_store, search=search)
    handler.start()
    yield handler
    handler.stop()
    search.close()


def test_embedding_topic_shift_and_vector_suggestions(pcm):
    assert pcm.monitor.stats()["method"] == "embedding"
    for text in ("What should I cook for dinner tonight? Maybe some Italian food.",
                 "I think spaghetti with a homemade tomato sauce would be nice.",
                 "My laptop's graphics driver keeps crashing after the operating system update."):
        pcm.handle_legacy({"action": "add_context", "context": text}, 7119)
    assert pcm.monitor.drain(60)
    events = pcm.monitor.events.events
    changed = [f for t, f in events if t == "context.changed"]
    assert len(changed) == 1 and changed[0]["method"] == "embedding"
    assert changed[0]["text"].startswith("My laptop's graphics driver")
    assert changed[0]["similarity"] < 0.35
    suggested = [m["memory_id"] for t, f in events if t == "context.suggestion" for m in f["memories"]]
    assert "m-cook" in suggested and "m-car" not in suggested
