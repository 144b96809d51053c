"""Request schemas of SessionMemoryAgent's native actions (see the handler's module docstring).

Interaction content size is checked by the domain (``too_large``, ``memory_orchestrator.max_content_bytes``).
"""
from __future__ import annotations

from schemas.base import Field, Schema

SESSION_ID = Field(str, required=True, min_len=1, max_len=128, doc="session id (session-<uuid4> unless chosen)")
METADATA = Field(dict, doc="free-form JSON object")

CREATE_SESSION = Schema({
    "user_id": Field(str, min_len=1, max_len=128, default="default"),
    "session_type": Field(str, min_len=1, max_len=64, default="conversation"),
    "metadata": Field(dict, default={}),
    "created_by": Field(str, min_len=1, max_len=128),
    "session_id": Field(str, min_len=1, max_len=128, doc="choose the id (conflict if it exists)"),
}, doc="Create a session; publishes session.created.")
GET_SESSION = Schema({
    "session_id": SESSION_ID,
    "context_limit": Field(int, min=0, max=1000, default=20, doc="recent interactions included as `context`"),
}, doc="A session with its most recent interactions.")
PUT_SESSION = Schema({
    "session_id": SESSION_ID,
    "metadata": METADATA,
    "user_id": Field(str, min_len=1, max_len=128, doc="used when the session is created"),
    "session_type": Field(str, min_len=1, max_len=64, doc="used when the session is created"),
}, doc="Create the session if absent, else merge metadata and refresh its activity.")
DELETE_SESSION = Schema({"session_id": SESSION_ID}, doc="Delete a session and all its interactions.")
ADD_INTERACTION = Schema({
    "session_id": SESSION_ID,
    "role": Field(str, required=True, min_len=1, max_len=64, doc="user, assistant, system, ..."),
    "content": Field(str, required=True),
    "metadata": METADATA,
}, doc="Append an interaction to a session (an unknown session is created when session_memory.auto_create).")
GET_CONTEXT = Schema({"session_id": SESSION_ID, "limit": Field(int, min=1, max=1000, default=20)},
                     doc="The last `limit` interactions, oldest first, as {role, content}.")
SEARCH_INTERACTIONS = Schema({
    "query": Field(str, required=True, min_len=1, max_len=2000),
    "session_id": Field(str, min_len=1, max_len=128),
    "limit": Field(int, min=1, max=1000, default=10),
}, doc="Interactions matching a query (semantic when the hub runs a search engine).")
EXPIRE_SESSIONS = Schema({"now": Field(float, min=0, max=253402300799.0,
                                       doc="judge idleness as of this epoch time (default: now)")},
                         doc="Run the session expiry task now.")
