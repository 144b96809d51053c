"""Request schemas of KnowledgeBase's native actions (see the handler's module docstring).

Fact content size: ``memory_orchestrator.max_content_bytes``; document size: ``knowledge_base.max_doc_bytes``;
both checked by the domain (``too_large``).
"""
from __future__ import annotations

from schemas.base import Field, Schema

TOPIC = Field(str, min_len=1, max_len=256, doc="the fact's topic (tag: topic.lower())")
DOC_ID = Field(str, required=True, min_len=1, max_len=128)

ADD_FACT = Schema({"topic": Field(str, required=True, min_len=1, max_len=256), "content": Field(str, required=True)},
                  doc="Store a fact under a topic.")
GET_FACT = Schema({"topic": Field(str, required=True, min_len=1, max_len=256)},
                  doc="The fact filed under a topic (else the best search hit among facts).")
UPDATE_FACT = Schema({
    "content": Field(str, required=True),
    "topic": TOPIC,
    "memory_id": Field(str, min_len=1, max_len=128, doc="the fact's id; else found by topic"),
}, doc="New content for a fact, found by memory_id or topic.")
SEARCH_FACTS = Schema({"query": Field(str, required=True, min_len=1, max_len=2000),
                       "limit": Field(int, min=1, max=1000, default=10)}, doc="Facts matching a query.")
DOC_GET = Schema({"doc_id": DOC_ID}, doc="A document.")
DOC_PUT = Schema({
    "doc_id": DOC_ID,
    "content": Field(str, required=True),
    "title": Field(str, max_len=512),
    "metadata": Field(dict),
    "namespace": Field(str, min_len=1, max_len=128),
}, doc="Create or replace a document (title, metadata, namespace kept unless given).")
DOC_DELETE = Schema({"doc_id": DOC_ID}, doc="Delete a document.")
