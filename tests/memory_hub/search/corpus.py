"""Synthetic but varied memory sentences (templates x vocabularies), shared by the tests and the benchmark."""
from __future__ import annotations

import random
import time
import uuid
from typing import Any
from collections.abc import Iterable, Iterator

import pytest
from sqlalchemy import Engine

from agents.memory_hub.search import Embedder, SearchEngine
from agents.memory_hub.search.settings import SearchSettings
from agents.memory_hub.stores.sql import SqlStore
from agents.memory_hub.stores.sql_models import Memory, content_hash

PEOPLE = ["Alice", "Bruno", "Chen", "Dana", "Emeka", "Farah", "Gustavo", "Hana", "Ivan", "Jules", "Kofi", "Lena",
          "Mateo", "Nadia", "Omar", "Priya", "Quentin", "Rosa", "Sven", "Tariq", "Uma", "Viktor", "Wen", "Yara",
          "Zoltan", "grandma", "the landlord", "my sister", "the neighbour", "the plumber", "our manager", "the kids"]
THINGS = ["the blue bicycle", "a vintage camera", "the garden hose", "a box of old letters", "the spare car key",
          "the wireless router", "a jar of honey", "the hiking boots", "the passport", "a sourdough starter",
          "the tax documents", "a chess set", "the electric kettle", "the winter tyres", "a stack of vinyl records",
          "the first-aid kit", "the laptop charger", "a bag of coffee beans", "the umbrella", "the guitar"]
PLACES = ["the attic", "the garage", "the kitchen drawer", "the office", "the basement", "the car boot",
          "the hallway cupboard", "the balcony", "the shed", "the bedroom closet", "the cellar", "the studio"]
TOPICS = ["quantum computing", "medieval history", "bread baking", "marathon training", "jazz piano",
          "urban gardening", "tax law", "bird watching", "machine learning", "ceramics", "astronomy",
          "sailing", "Italian cooking", "climate policy", "chess openings", "woodworking", "photography"]
DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
FOODS = ["sushi", "lentil soup", "mango", "dark chocolate", "pizza", "green curry", "oatmeal", "falafel",
         "blue cheese", "strawberries", "ramen", "paella"]
FEELINGS = ["happy", "anxious", "tired", "excited", "frustrated", "calm", "curious", "proud"]

ASIDES = ["according to {p}", "if I remember correctly", "as {p} mentioned", "last {d}", "before the holidays",
          "after the storm", "while it was raining", "during the move", "just before lunch", "in the evening",
          "on the phone", "at the party", "without telling anyone", "as usual", "for the third time"]

TEMPLATES = [
    "{p} left {t} in {pl}.",
    "{p} is learning about {topic} every {d}.",
    "{p} really enjoys eating {f} for dinner.",
    "{p} cannot stand {f} and refuses to eat it.",
    "Remember to return {t} to {p} on {d}.",
    "{p} felt {feel} after the meeting on {d}.",
    "The appointment with {p} was moved to {d} afternoon.",
    "{p} recommended a book about {topic}.",
    "We keep {t} in {pl} since the move.",
    "{p} borrowed {t} and promised to bring it back by {d}.",
    "On {d} {p} talked for an hour about {topic}.",
    "{p} is {feel} about the trip and wants {f} on the way.",
    "The reminder says: call {p} about {topic} before {d}.",
    "{p} found {t} behind the sofa in {pl}.",
    "Every {d} {p} cooks {f} for the whole family.",
    "{p} asked whether {t} is still in {pl}.",
]


def sentence(rng: random.Random) -> str:
    text = rng.choice(TEMPLATES).format(p=rng.choice(PEOPLE), t=rng.choice(THINGS), pl=rng.choice(PLACES),
                                        topic=rng.choice(TOPICS), d=rng.choice(DAYS), f=rng.choice(FOODS),
                                        feel=rng.choice(FEELINGS))
    if rng.random() < 0.6:
        aside = rng.choice(ASIDES).format(p=rng.choice(PEOPLE), d=rng.choice(DAYS))
        text = f"{text[:-1]}, {aside}."
    return text[0].upper() + text[1:]


def sentences(count: int, seed: int = 7) -> list[str]:
    """``count`` sentences (mostly distinct; duplicates happen, as in real memories)."""
    rng = random.Random(seed)
    return [sentence(rng) for _ in range(count)]


def memory_row(content: str, *, memory_id: str | None = None, namespace: str = "default",
               memory_type: str = "general", tags: Iterable[str] = (), session_id: str | None = None,
               parent_id: str | None = None, importance: float = 0.5, created_at: float | None = None,
               expires_at: float | None = None) -> dict[str, Any]:
    """A full ``memories`` row for a Core insert."""
    now = time.time()
    return {"memory_id": memory_id or f"mem-{uuid.uuid4()}", "content": content, "memory_type": memory_type,
            "memory_tier": "short", "importance": importance, "access_count": 0,
            "created_at": now if created_at is None else created_at, "updated_at": now,
            "expires_at": expires_at, "metadata": {}, "tags": list(tags), "relationships": {},
            "parent_id": parent_id, "namespace": namespace, "session_id": session_id,
            "content_hash": content_hash(content)}


def insert_rows(engine: Engine, rows: list[dict[str, Any]]) -> list[str]:
    """Insert rows in one transaction (no embeddings: the search engine adds them)."""
    if rows:
        with engine.execution_options(sqlite_begin="IMMEDIATE").begin() as conn:
            conn.execute(Memory.__table__.insert(), rows)
    return [row["memory_id"] for row in rows]


def populated(sql_url: str, tmp_path_factory: pytest.TempPathFactory, embedder: Embedder,
              rows: list[dict[str, Any]], **settings: Any) -> Iterator[SearchEngine]:
    """Yield a started engine over ``sql_url`` (a fresh migrated database, ``module_sql_url``) holding
    ``rows`` (embedded once, for a whole module)."""
    base = tmp_path_factory.mktemp("search")
    store = SqlStore(sql_url)
    insert_rows(store.engine, rows)
    settings.setdefault("maintenance_interval_s", 0)
    engine = SearchEngine(store, embedder, SearchSettings(**settings), data_dir=base / "data")
    engine.start()
    engine.index_many([(row["memory_id"], None) for row in rows])
    try:
        yield engine
    finally:
        engine.close()
        store.close()
