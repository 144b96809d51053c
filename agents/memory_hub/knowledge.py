"""KnowledgeBase's domain: facts (memories of type ``knowledge_fact``) and documents (``knowledge_base`` table).

Facts, as the legacy agent stored them through MemoryClient: tier long, importance 0.8, metadata
``{"topic": topic}``, tags ``[topic.lower()]``. ``get_fact(topic)`` prefers a fact filed under that topic
(tag match, exact topic first, newest first), then the best search hit among facts. ``search_facts``
searches facts only (semantic ranking when the hub has a search engine, else SQL text search).

Documents: ``doc_id`` -> ``{title, content, metadata, namespace}`` in SQL with a versioned hot copy in Redis
db2 (``kb:{doc_id}``), served without SQL while current (``hot_cache.HotCache``; writers invalidate it).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import select

from agents.memory_hub.memories import Memories
from agents.memory_hub.hot_cache import HotCache
from agents.memory_hub.memory_records import (check_content, check_json_object, check_name, entry_defaults,
                                              memory_dict, memory_values, stamp)
from agents.memory_hub.search.filters import parse_filters, where_clauses
from agents.memory_hub.stores.sql_models import KnowledgeDocument, Memory
from bus.errors import BadRequest, NotFound
from bus.settings import setting

@dataclass(frozen=True)
class KnowledgeSettings:
    """The ``knowledge_base`` section."""

    fact_tier: Literal["short", "medium", "long"] = setting("long", doc="legacy add_fact")
    fact_importance: float = setting(0.8, minimum=0.0, maximum=1.0)
    max_doc_bytes: int = setting(1 << 20, minimum=1, doc="document content over this is refused")
    cache_ttl_s: float = setting(3600.0, minimum=1.0, doc="Redis copy kb:{doc_id}")
FACT = "knowledge_fact"
TOPIC_LEN = 256


def fact_not_found() -> NotFound:
    return NotFound("Fact not found")


def doc_dict(row: KnowledgeDocument) -> dict[str, Any]:
    return {"doc_id": row.doc_id, "title": row.title, "content": row.content, "metadata": dict(row.meta or {}),
            "namespace": row.namespace, "created_at": row.created_at, "updated_at": row.updated_at}


class Knowledge:
    def __init__(self, memories: Memories, redis: Any = None, settings: KnowledgeSettings = KnowledgeSettings()):
        self.memories = memories
        self.settings = settings
        self.cache = HotCache(redis.kb if redis is not None else None, self.settings.cache_ttl_s,
                              memories.settings.cache_retry_s)

    # ------------------------------------------------------------------ facts
    def add_fact(self, topic: Any, content: Any) -> str:
        topic = check_name("topic", topic, TOPIC_LEN)
        return self.memories.add(memory_values({"content": content, "memory_type": FACT,
                                                "memory_tier": self.settings.fact_tier,
                                                "importance": self.settings.fact_importance,
                                                "metadata": {"topic": topic}, "tags": [topic.lower()]},
                                               self.memories.limits, defaults=entry_defaults()))

    def find_by_topic(self, topic: str) -> dict[str, Any] | None:
        """The newest fact filed under ``topic`` (exact topic before case-insensitive match)."""
        flt = parse_filters({"memory_type": FACT, "tags": [topic.lower()]})
        clauses = where_clauses(Memory.__table__, flt, self.memories.sql.engine.dialect.name)
        stmt = select(Memory).where(*clauses).order_by(Memory.updated_at.desc()).limit(50)
        with self.memories.sql.session() as s:
            rows = [r for r in s.execute(stmt).scalars() if topic.lower() in (r.tags or [])]
            exact = [r for r in rows if (r.meta or {}).get("topic") == topic]
            best = (exact or rows or [None])[0]
            return None if best is None else memory_dict(best)

    def get_fact(self, topic: Any) -> dict[str, Any]:
        topic = check_name("topic", topic, TOPIC_LEN)
        found = self.find_by_topic(topic)
        if found is not None:
            return found
        hits, _ = self.memories.semantic_search(topic, 1, {"memory_type": FACT}, keep_nearest=0)  # relevant only
        if not hits:
            raise fact_not_found()
        return hits[0]

    def update_fact(self, content: Any, topic: Any = None, memory_id: Any = None) -> str:
        """New content for the fact ``memory_id``, or for the fact found by ``topic``; returns its id."""
        if memory_id is None:
            topic = check_name("topic", topic, TOPIC_LEN)
            found = self.find_by_topic(topic)
            if found is None:
                hits = self.memories.text_search(topic, 1, {"memory_type": FACT})
                found = hits[0] if hits else None
            if found is None:
                raise fact_not_found()
            memory_id = found["memory_id"]
        memory_id = check_name("memory_id", memory_id)
        self.memories.update(memory_id, memory_values({"content": content}, self.memories.limits, partial=True))
        return memory_id

    def search_facts(self, query: Any, limit: int = 10) -> list[dict[str, Any]]:
        if not isinstance(query, str) or not query.strip():
            raise BadRequest("query is required.", details={"field": "query"})
        results, how = self.memories.semantic_search(query, limit, {"memory_type": FACT})
        if not results and how != "text":
            results = self.memories.text_search(query, limit, {"memory_type": FACT})
        return results

    # ------------------------------------------------------------------ documents
    def doc_get(self, doc_id: str) -> dict[str, Any]:
        found = self.cache.lookup(doc_id)
        if found.hit:
            return found.value
        with self.memories.sql.session() as s:
            row = s.get(KnowledgeDocument, doc_id)
            if row is None:
                raise NotFound(f"no document {doc_id}", details={"doc_id": doc_id})
            result = doc_dict(row)
        self.cache.fill(doc_id, found, result)
        return result

    def doc_put(self, doc_id: str, content: Any, title: Any = None, metadata: Any = None,
                namespace: Any = None) -> tuple[dict[str, Any], bool]:
        """Create or replace the document's content (title/metadata/namespace kept unless given)."""
        check_name("doc_id", doc_id)
        content = check_content(content, self.settings.max_doc_bytes)
        if title is not None:
            check_name("title", title, 512)
        if metadata is not None:
            check_json_object("metadata", metadata, self.memories.limits["max_metadata_bytes"])
        if namespace is not None:
            check_name("namespace", namespace)
        now = stamp()
        with self.memories.sql.transaction() as s:
            row = s.get(KnowledgeDocument, doc_id)
            created = row is None
            if created:
                row = KnowledgeDocument(doc_id=doc_id, title=title or "", content=content, meta=metadata or {},
                                        namespace=namespace or "default", created_at=now, updated_at=now)
                s.add(row)
            else:
                row.content, row.updated_at = content, now
                if title is not None:
                    row.title = title
                if metadata is not None:
                    row.meta = metadata
                if namespace is not None:
                    row.namespace = namespace
            s.flush()
            result = doc_dict(row)
        self.cache.invalidate(doc_id)
        return result, created

    def doc_delete(self, doc_id: str) -> None:
        with self.memories.sql.transaction() as s:
            row = s.get(KnowledgeDocument, doc_id)
            if row is None:
                raise NotFound(f"no document {doc_id}", details={"doc_id": doc_id})
            s.delete(row)
        self.cache.invalidate(doc_id)
