"""Request schemas of ContextManager's native actions (see the handler's module docstring)."""
from __future__ import annotations

from schemas.base import Field, Schema

CONTEXT_ID = Field(str, default="default", min_len=1, max_len=128, doc="context window id")
TEXT = Field(str, required=True, min_len=1, max_len=20000, doc="utterance or fact to keep in context")
SPEAKER = Field(str, min_len=1, max_len=128, doc="speaker name; items also enter that speaker's view")
METADATA = Field(dict, max_len=64, doc="free JSON object stored with the item")
MAX_ITEMS = Field(int, min=1, max=1000, doc="at most this many items, most important first")
# route form: HTTP query values are strings
MAX_ITEMS_QUERY = Field((int, str), max_len=4, doc="at most this many items (integer, or its decimal text)")

ADD = Schema({
    "context_id": CONTEXT_ID, "text": TEXT, "speaker": SPEAKER, "metadata": METADATA,
    "importance": Field(float, min=0.0, max=1.0, doc="explicit importance; default: the legacy keyword score"),
}, doc="Add an item; adapts the window size; publishes context.added.")

GET = Schema({"context_id": CONTEXT_ID, "speaker": SPEAKER, "max_items": MAX_ITEMS},
             doc="Items of the speaker's view or the general window, by (importance, timestamp) descending.")

GET_TEXT = Schema({"context_id": CONTEXT_ID, "speaker": SPEAKER, "max_items": MAX_ITEMS},
                  doc="The same items rendered as '[speaker]: text' lines.")

CLEAR = Schema({"context_id": CONTEXT_ID, "speaker": SPEAKER},
               doc="Empty a speaker's view, or delete every item of the context.")

PRUNE = Schema({"context_id": CONTEXT_ID}, doc="Delete low-importance items of a full window (at most 25 %).")

INFO = Schema({"context_id": CONTEXT_ID}, doc="Window size, item count and speakers of a context.")

ROUTE_GET = Schema({"context_id": Field(str, required=True, min_len=1, max_len=128), "speaker": SPEAKER,
                    "max_items": MAX_ITEMS_QUERY}, doc="Route GET /context/{context_id}.")

ROUTE_ADD = Schema({"context_id": Field(str, required=True, min_len=1, max_len=128), "text": TEXT,
                    "speaker": SPEAKER, "metadata": METADATA, "importance": Field(float, min=0.0, max=1.0)},
                   doc="Route POST /context/{context_id}.")

ROUTE_CLEAR = Schema({"context_id": Field(str, required=True, min_len=1, max_len=128), "speaker": SPEAKER},
                     doc="Route DELETE /context/{context_id}.")
