"""Request schemas of MemoryOrchestratorService's native actions (see the handler's module docstring).

Sizes are checked next to these schemas, at the same edge, by the handler (``memory_records.within_limits``:
``too_large`` naming the field, limits ``memory_orchestrator.max_content_bytes``/``max_metadata_bytes``), so
that oversize is not reported as ``bad_request``. ``update_data`` and batch items are free objects here: the
handler checks them with ``memory_records.memory_values``, as the legacy adapter does.
"""
from __future__ import annotations

from schemas.base import Field, Schema

TIERS = ("short", "medium", "long")
SORT_FIELDS = ("created_at", "updated_at", "importance", "last_accessed_at", "access_count")

MEMORY_ID = Field(str, required=True, min_len=1, max_len=128, doc="memory id (mem-<uuid4> unless chosen)")
ID = Field(str, min_len=1, max_len=128)
LIMIT = Field(int, min=1, max=1000, doc="most results (capped by memory_orchestrator.max_results)")

MEMORY_FIELDS = {
    "content": Field(str, required=True, doc="the memory text"),
    "memory_type": Field(str, min_len=1, max_len=64, default="general",
                         doc="e.g. general, interaction, knowledge_fact, session, consolidated"),
    "memory_tier": Field(str, choices=TIERS, default="short"),
    "importance": Field(float, min=0.0, max=1.0, default=0.5),
    "metadata": Field(dict, default={}),
    "tags": Field(list, item=Field(str, min_len=1, max_len=256), max_len=100, default=[]),
    "parent_id": Field(str, min_len=1, max_len=128, doc="parent memory (must exist)"),
    "memory_id": Field(str, min_len=1, max_len=128, doc="choose the id (conflict if it exists)"),
    "expires_at": Field(float, doc="epoch seconds; expired memories drop out of semantic search"),
    "namespace": Field(str, min_len=1, max_len=128, default="default"),
    "session_id": Field(str, min_len=1, max_len=128),
    "relationships": Field(dict, doc="free-form legacy relationships map"),
}

ADD_MEMORY = Schema({**MEMORY_FIELDS,
                     "dedupe": Field(bool, default=False,
                                     doc="return the memory of this namespace with the same content, if any, "
                                         "instead of a new one")},
                    doc="Store one memory; returns its id.")
GET_MEMORY = Schema({"memory_id": MEMORY_ID,
                     "touch": Field(bool, default=True, doc="count this read (access_count + 1)")},
                    doc="One memory (counts an access unless touch is false).")
GET_CHILDREN = Schema({
    "parent_id": Field(str, required=True, min_len=1, max_len=128),
    "limit": LIMIT,
    "sort_field": Field(str, choices=SORT_FIELDS, default="created_at"),
    "sort_order": Field(str, choices=("asc", "desc"), default="asc"),
}, doc="Children of a memory, sorted.")
ADD_RELATIONSHIP = Schema({
    "source_id": Field(str, required=True, min_len=1, max_len=128),
    "target_id": Field(str, required=True, min_len=1, max_len=128),
    "relationship_type": Field(str, required=True, min_len=1, max_len=64),
    "strength": Field(float, min=0.0, default=1.0),
}, doc="Create (or re-weight) a typed relationship between two memories.")
GET_RELATED = Schema({"memory_id": MEMORY_ID, "relationship_type": Field(str, min_len=1, max_len=64)},
                     doc="Targets of a memory's relationships.")
SEARCH_MEMORY = Schema({
    "query": Field(str, required=True, min_len=1, max_len=2000),
    "memory_type": Field(str, min_len=1, max_len=64),
    "parent_id": ID,
    "filters": Field(dict, doc="namespace, memory_type, session_id, parent_id, tags, created_after/before, "
                               "min_importance"),
    "limit": Field(int, min=1, max=1000, default=10),
}, doc="Text search (content contains query), most important first.")
SEMANTIC_SEARCH = Schema({
    "query": Field(str, required=True, min_len=1, max_len=2000),
    "k": Field(int, min=1, max=1000, default=5),
    "filters": Field(dict, doc="as search_memory"),
}, doc="Semantic (hybrid) search when the hub runs a search engine, else text search.")
UPDATE_MEMORY = Schema({
    "memory_id": MEMORY_ID,
    "update_data": Field(dict, required=True, doc="fields of the memory to set (memory_id cannot change)"),
}, doc="Set fields of a memory; returns it.")
DELETE_MEMORY = Schema({"memory_id": MEMORY_ID, "cascade": Field(bool, default=False, doc="delete descendants too")},
                       doc="Delete a memory (relationships and group mappings go with it).")
REINFORCE_MEMORY = Schema({"memory_id": MEMORY_ID,
                           "reinforcement_factor": Field(float, min=0.0, max=100.0, default=1.2)},
                          doc="importance = min(importance * factor, 1).")
CREATE_CONTEXT_GROUP = Schema({"name": Field(str, required=True, min_len=1, max_len=255),
                               "description": Field(str, max_len=4096)}, doc="Create a context group.")
GROUP_ID = Field((str, int), required=True, doc="a group id from create_context_group")
ADD_TO_GROUP = Schema({"memory_id": MEMORY_ID, "group_id": GROUP_ID}, doc="Put a memory in a group.")
GET_MEMORIES_BY_GROUP = Schema({"group_id": GROUP_ID, "limit": LIMIT}, doc="The memories of a group.")
BATCH_ADD_MEMORIES = Schema({
    "memories": Field(list, required=True, min_len=1, item=Field(dict), doc="memory objects as add_memory"),
}, doc="Add many memories in one transaction: all or none.")
BATCH_GET_MEMORIES = Schema({
    "memory_ids": Field(list, required=True, min_len=1, item=Field(str, min_len=1, max_len=128)),
}, doc="Many memories at once (missing ids are listed in `missing`).")
CREATE_SESSION = Schema({
    "user_id": Field(str, min_len=1, max_len=128, default="default"),
    "session_type": Field(str, min_len=1, max_len=64, default="conversation"),
    "created_by": Field(str, min_len=1, max_len=128),
    "metadata": Field(dict, default={}),
}, doc="Create a session (as SessionMemoryAgent.create_session).")
RUN_LIFECYCLE = Schema({"now": Field(float, doc="evaluate ages as of this epoch time (default: now)")},
                       doc="Run one decay/promotion/consolidation pass now.")
