"""Property tests: the frame decoder and schema validation answer every input with a value or a typed error."""
from __future__ import annotations

import json

import msgpack
from hypothesis import given, settings, strategies as st

from bus.errors import BadRequest
from bus.wire import RequestError, parse_request
from schemas.base import ANY, Field, Schema

values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20)
    | st.binary(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)

SCHEMA = Schema({
    "key": Field(str, required=True, max_len=16),
    "n": Field(int, min=0, max=100, default=1),
    "ratio": Field(float, min=0.0, max=1.0),
    "tags": Field(list, item=Field(str, max_len=8), max_len=5),
    "blob": Field(ANY),
})


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=300))
def test_any_bytes_parse_or_bad_request(payload):
    try:
        parse_request(payload)
    except RequestError as exc:
        assert exc.error.code == "bad_request"


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(["v", "id", "agent", "action", "args", "method", "path", "token",
                                        "deadline_ms", "stream", "body", "x"]), values, max_size=8),
       st.booleans())
def test_any_envelope_map_parses_or_bad_request(envelope, as_json):
    try:
        payload = json.dumps(envelope).encode() if as_json else msgpack.packb(envelope, use_bin_type=True)
    except (TypeError, ValueError, OverflowError):
        return
    try:
        request = parse_request(payload)
    except RequestError as exc:
        assert exc.error.code == "bad_request"
        return
    assert (request.agent and request.action) or request.path is not None


@settings(max_examples=400, deadline=None)
@given(st.dictionaries(st.sampled_from(["key", "n", "ratio", "tags", "blob", "other"]), values, max_size=6))
def test_schema_validates_or_names_the_field(args):
    try:
        out = SCHEMA.validate(args)
    except BadRequest as exc:
        assert "field" in exc.details or "args" in exc.message
        return
    assert isinstance(out["key"], str) and len(out["key"]) <= 16
    assert out["n"] is None or 0 <= out["n"] <= 100
