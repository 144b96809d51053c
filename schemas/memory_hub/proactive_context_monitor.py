"""Request schemas of ProactiveContextMonitor's native actions (see the handler's module docstring)."""
from __future__ import annotations

from schemas.base import ANY, Field, Schema

ADD_CONTEXT = Schema({
    "context": Field(ANY, required=True, doc="any JSON value (a string or an object with text/content)"),
}, doc="Append to the context history (newest 100 kept), publish context.added, analyse it.")

GET_CONTEXT_HISTORY = Schema({"limit": Field(int, default=10, min=1, max=100)},
                             doc="The newest `limit` entries, oldest first.")

CLEAR_CONTEXT_HISTORY = Schema({}, doc="Forget the context history.")

STATUS = Schema({}, doc="The monitor task: method, current topic, published/suppressed events per topic.")
