"""Request schemas of UnifiedMemoryReasoningAgent's native actions (see the handler's module docstring)."""
from __future__ import annotations

from schemas.base import Field, Schema

USER_ID = Field(str, default="default", min_len=1, max_len=128, doc="user whose digital twin this is")
SESSION_ID = Field(str, required=True, min_len=1, max_len=128)
MODES = ("hybrid", "vector", "keyword")
QUERY = Field(str, required=True, max_len=2000, doc="search text (must not be blank)")
FILTERS = Field(dict, max_len=16, doc="namespace, memory_type, session_id, parent_id, tags, created_after, "
                                      "created_before, min_importance")

UPDATE_TWIN = Schema({"user_id": USER_ID, "twin_data": Field(dict, required=True, min_len=1, max_len=1000)},
                     doc="Create or replace a user's digital twin.")
GET_TWIN = Schema({"user_id": USER_ID}, doc="A user's digital twin (not_found when there is none).")
DELETE_TWIN = Schema({"user_id": USER_ID}, doc="Delete a user's digital twin (not_found when there is none).")

ADD_INTERACTION = Schema({
    "session_id": SESSION_ID,
    "interaction_type": Field(str, required=True, min_len=1, max_len=64,
                              doc="code | user_query | system_response | error | any other"),
    "content": Field(str, required=True, min_len=1, max_len=65536),
    "metadata": Field(dict, max_len=64),
}, doc="Record an interaction; past max_session_history the session summary is refreshed.")

GET_INTERACTIONS = Schema({"session_id": SESSION_ID, "limit": Field(int, default=50, min=1, max=1000)},
                          doc="A session's interactions, newest first.")

SESSION_CONTEXT = Schema({"session_id": SESSION_ID, "max_tokens": Field(int, min=1, max=1_000_000)},
                         doc="The session summary (legacy get_context), cut to max_tokens when given.")

ADD_ERROR_PATTERN = Schema({
    "error_type": Field(str, required=True, min_len=1, max_len=128),
    "pattern": Field(str, required=True, min_len=1, max_len=1000, doc="Python regular expression"),
    "solution": Field(str, max_len=65536),
}, doc="Create or replace the pattern of an error type.")

GET_ERROR_SOLUTION = Schema({"error_message": Field(str, required=True, min_len=1, max_len=20000)},
                            doc="The solution of the first matching pattern (its occurrence counted).")

LIST_ERROR_PATTERNS = Schema({}, doc="Every error pattern with its counts.")

SEMANTIC_SEARCH = Schema({
    "query": QUERY,
    "k": Field((int, str), max_len=4, doc="number of results (integer, or its decimal text in a URL)"),
    "mode": Field(str, default="hybrid", choices=MODES),
    "filters": FILTERS,
}, doc="Memories nearest the query (route GET /embedding/{query}).")

GET_CONTEXT = Schema({
    "query": QUERY,
    "token_budget": Field(int, min=1, max=1_000_000, doc="default unified_memory_reasoning.default_token_budget"),
    "k": Field(int, min=1, max=100),
    "mode": Field(str, default="hybrid", choices=MODES),
    "filters": FILTERS,
}, doc="The top memories for the query, near-duplicates dropped, packed into the token budget.")
