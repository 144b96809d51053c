"""KnowledgeBase: legacy-protocol.md §1.3 (5715/6715).

The legacy agent's ``process_request`` was never called by its base loop; the hub serves that intended
protocol (flat fields). Facts are memories of type ``knowledge_fact`` (tier long, importance 0.8, metadata
``{topic}``, tags ``[topic.lower()]``); documents live in the ``knowledge_base`` table with a Redis db2 hot
copy (domain: ``agents/memory_hub/knowledge.py``).

Legacy port 5715 (JSON):
  add_fact{topic, content}                 -> {status:"success", memory_id}   ("Missing topic or content")
  get_fact{topic}                          -> {status:"success", fact:{memory}} ("Missing topic", "Fact not found")
  update_fact{topic | memory_id, content}  -> {status:"success", message:"Fact updated successfully"}
                                              ("Missing required parameters", "Fact not found")
  search_facts{query, limit=10}            -> {status:"success", results:[memory...]}  ("query is required.")
  health_check                             -> {status:"success", healthy:true}
  ping / health (and any message on 6715)  -> {status:"HEALTHY", service:"KnowledgeBase", uptime_seconds,
                                               request_count, timestamp}
  errors -> {status:"error", message}; unknown -> "Unknown action: X"; not an object -> "Invalid request format"

Native (agent "KnowledgeBase"):
  add_fact{topic, content}                 -> {memory_id}
  get_fact{topic}                          -> memory                          (not_found "Fact not found")
  update_fact{content, topic? | memory_id?}  -> {memory_id}
  search_facts{query, limit?}              -> {results, count}
  doc_get{doc_id}                          -> {doc_id, title, content, metadata, namespace, created_at, updated_at}
  doc_put{doc_id, content, title?, metadata?, namespace?}  -> document + {created}
  doc_delete{doc_id}                       -> {doc_id, deleted:true}
Routes: GET/PUT/DELETE /doc/{doc_id}. Every fact write publishes memory.added.
"""
from __future__ import annotations

import time

from agents.memory_hub.knowledge import Knowledge
from agents.memory_hub.memory_orchestrator_legacy import LegacyError, memory_format_error
from bus.errors import BadRequest, HubError
from bus.handler import CallContext, Handler, Route, action
from bus.legacy import LegacyCall, LegacyTable, LegacyVocabulary
from schemas.memory_hub import knowledge_base as schema


class KnowledgeBase(Handler):
    name = "KnowledgeBase"
    legacy_ports = (5715,)
    legacy_health_ports = (6715,)
    legacy_vocabulary = LegacyVocabulary()
    routes = (
        Route("GET", "/doc/{doc_id}", "doc_get"),
        Route("PUT", "/doc/{doc_id}", "doc_put"),
        Route("DELETE", "/doc/{doc_id}", "doc_delete"),
    )

    def __init__(self, knowledge: Knowledge):
        self.knowledge = knowledge
        self.started_at = time.time()

    # ------------------------------------------------------------------ legacy
    def legacy_table(self, call: LegacyCall) -> LegacyTable:
        def health(_request: dict) -> dict:
            return self.legacy_health(call.port)

        return LegacyTable({
            "add_fact": self._legacy_add, "get_fact": self._legacy_get, "update_fact": self._legacy_update,
            "search_facts": self._legacy_search,
            "health_check": lambda _: {"status": "success", "healthy": True},
            "ping": health, "health": health,
        })

    def legacy_health(self, port: int) -> dict:
        return {"status": "HEALTHY", "service": self.name, "uptime_seconds": int(time.time() - self.started_at),
                "request_count": self.legacy_request_count, "timestamp": time.time()}

    def _legacy_add(self, request: dict) -> dict:
        if not request.get("topic") or not request.get("content"):
            raise LegacyError("Missing topic or content")
        try:
            return {"status": "success", "memory_id": self.knowledge.add_fact(request["topic"], request["content"])}
        except HubError as exc:
            raise memory_format_error(exc) from None

    def _legacy_get(self, request: dict) -> dict:
        if not request.get("topic"):
            raise LegacyError("Missing topic")
        return {"status": "success", "fact": self.knowledge.get_fact(request["topic"])}

    def _legacy_update(self, request: dict) -> dict:
        topic, content, memory_id = request.get("topic"), request.get("content"), request.get("memory_id")
        if not ((topic or memory_id) and content):
            raise LegacyError("Missing required parameters")
        try:
            self.knowledge.update_fact(content, topic=topic or None, memory_id=memory_id or None)
        except HubError as exc:
            raise memory_format_error(exc) from None
        return {"status": "success", "message": "Fact updated successfully"}

    def _legacy_search(self, request: dict) -> dict:
        limit = request.get("limit", 10)
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 1000:
            raise LegacyError("limit must be an integer between 1 and 1000")
        return {"status": "success", "results": self.knowledge.search_facts(request.get("query", ""), limit)}

    # ------------------------------------------------------------------ native
    @action(schema.ADD_FACT)
    def add_fact(self, args: dict, ctx: CallContext) -> dict:
        """Store a fact under a topic."""
        return {"memory_id": self.knowledge.add_fact(args["topic"], args["content"])}

    @action(schema.GET_FACT)
    def get_fact(self, args: dict, ctx: CallContext) -> dict:
        """The fact filed under a topic."""
        return self.knowledge.get_fact(args["topic"])

    @action(schema.UPDATE_FACT)
    def update_fact(self, args: dict, ctx: CallContext) -> dict:
        """New content for a fact found by memory_id or topic."""
        if args["topic"] is None and args["memory_id"] is None:
            raise BadRequest("missing field 'topic' (or 'memory_id')", details={"field": "topic"})
        return {"memory_id": self.knowledge.update_fact(args["content"], args["topic"], args["memory_id"])}

    @action(schema.SEARCH_FACTS)
    def search_facts(self, args: dict, ctx: CallContext) -> dict:
        """Facts matching a query."""
        results = self.knowledge.search_facts(args["query"], args["limit"])
        return {"results": results, "count": len(results)}

    @action(schema.DOC_GET)
    def doc_get(self, args: dict, ctx: CallContext) -> dict:
        """A document."""
        return self.knowledge.doc_get(args["doc_id"])

    @action(schema.DOC_PUT)
    def doc_put(self, args: dict, ctx: CallContext) -> dict:
        """Create or replace a document."""
        doc, created = self.knowledge.doc_put(args["doc_id"], args["content"], args["title"], args["metadata"],
                                              args["namespace"])
        return {**doc, "created": created}

    @action(schema.DOC_DELETE)
    def doc_delete(self, args: dict, ctx: CallContext) -> dict:
        """Delete a document."""
        self.knowledge.doc_delete(args["doc_id"])
        return {"doc_id": args["doc_id"], "deleted": True}
