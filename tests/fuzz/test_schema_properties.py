"""Property tests over the schema of EVERY native action of both hubs, and the frame decoder around them.

tests/bus/test_wire_properties.py covers arbitrary bytes and arbitrary envelope maps against one sample
schema; these tests go through the real action table:

* arguments drawn from an action's own schema are accepted, and come back with every field (defaults
  filled) and the values given;
* arbitrary arguments keyed by the action's field names get a dict whose values still satisfy the schema, or
  ``bad_request`` naming the field -- never another exception;
* a valid request for any action survives msgpack and JSON encoding through ``parse_request`` unchanged;
* damaged frames (truncated, bytes flipped, spliced) parse or get ``bad_request``, and the error reply echoes
  the id whenever the frame still decodes to a map with a usable id;
* pathological frames (deep nesting, huge numbers, NaN, duplicate keys) get ``bad_request`` or parse.
"""
from __future__ import annotations

import json

import msgpack
import pytest
from hypothesis import HealthCheck, assume, given, settings, strategies as st

from bus.errors import BadRequest
from bus.wire import RequestError, parse_request
from schemas.base import check_value
from tests.fuzz.strategies import hostile_args, valid_args
from tests.fuzz.targets import all_actions, check_frame, envelope

ACTIONS = all_actions()
IDS = [f"{ref.hub}:{ref.agent}.{ref.action}" for ref in ACTIONS]
PER_ACTION = settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                            HealthCheck.data_too_large])


def test_both_hubs_expose_actions():
    hubs = {ref.hub for ref in ACTIONS}
    assert hubs == {"memory_hub", "model_manager_suite"}
    assert len(ACTIONS) > 100


@pytest.mark.parametrize("ref", ACTIONS, ids=IDS)
@PER_ACTION
@given(data=st.data())
def test_arguments_drawn_from_the_schema_are_accepted(ref, data):
    args = data.draw(valid_args(ref.spec.schema))
    out = ref.spec.schema.validate(args)
    assert set(out) == set(ref.spec.schema.fields)
    for name, value in args.items():
        if value is not None:
            assert out[name] == value


@pytest.mark.parametrize("ref", ACTIONS, ids=IDS)
@PER_ACTION
@given(data=st.data())
def test_arbitrary_arguments_are_validated_or_refused_by_field(ref, data):
    schema = ref.spec.schema
    args = data.draw(hostile_args(schema))
    try:
        out = schema.validate(args)
    except BadRequest as err:
        assert err.code == "bad_request"
        assert "field" in err.details or "args" in err.message, err.message
        return
    for name, spec in schema.fields.items():
        if out[name] is not None and name in args:
            check_value(name, out[name], spec)          # what validate let through still satisfies the field


@pytest.mark.parametrize("ref", ACTIONS, ids=IDS)
@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), request_id=st.integers(-2**63, 2**63 - 1) | st.text(max_size=16))
def test_valid_requests_survive_both_encodings(ref, data, request_id):
    args = data.draw(valid_args(ref.spec.schema))
    frame = envelope(ref.agent, ref.action, args, request_id, deadline_ms=5000)
    frames = [msgpack.packb(frame, use_bin_type=True)]
    if not any(isinstance(v, bytes) for v in args.values()):
        frames.append(json.dumps(frame).encode())
    for payload in frames:
        request = parse_request(payload)
        assert (request.agent, request.action, request.id, request.deadline_ms) == (ref.agent, ref.action,
                                                                                     request_id, 5000)
        assert request.args == args
        assert check_frame(payload) == "valid"


def _decoded_map(payload: bytes):
    try:
        if payload[:1] == b"{":
            return json.loads(payload.decode("utf-8"))
        return msgpack.unpackb(payload, raw=False, strict_map_key=False)
    except Exception:
        return None


@st.composite
def damaged_frames(draw):
    ref = draw(st.sampled_from(ACTIONS))
    args = draw(valid_args(ref.spec.schema))
    frame = envelope(ref.agent, ref.action, args, draw(st.integers(0, 10**6) | st.text(max_size=8)))
    as_json = draw(st.booleans()) and not any(isinstance(v, bytes) for v in args.values())
    payload = bytearray(json.dumps(frame).encode() if as_json else msgpack.packb(frame, use_bin_type=True))
    for _ in range(draw(st.integers(1, 4))):
        how = draw(st.sampled_from(["cut", "flip", "insert", "splice"]))
        at = draw(st.integers(0, max(0, len(payload) - 1)))
        if how == "cut":
            del payload[at:]
        elif how == "flip" and payload:
            payload[at] ^= 1 << draw(st.integers(0, 7))
        elif how == "insert":
            payload[at:at] = draw(st.binary(min_size=1, max_size=8))
        else:
            payload[at:at] = payload[: draw(st.integers(0, len(payload)))]
    return bytes(payload)


@settings(max_examples=600, deadline=None)
@given(damaged_frames())
def test_damaged_frames_parse_or_are_refused_with_the_id_echoed(payload):
    assume(payload)
    outcome = check_frame(payload)
    if outcome != "bad_frame":
        return
    data = _decoded_map(payload)
    request_id = data.get("id") if isinstance(data, dict) else None
    if isinstance(request_id, (str, int)) and not isinstance(request_id, bool):
        with pytest.raises(RequestError) as err:
            parse_request(payload)
        assert err.value.request_id == request_id


@pytest.mark.parametrize("payload", [
    b"[" * 100000 + b"]" * 100000,
    b"{\"a\":" * 50000 + b"1" + b"}" * 50000,
    b"\x91" * 200000 + b"\xc0",                                   # msgpack: 200k nested arrays
    b"\x81\xa1a" * 100000 + b"\xc0",                              # msgpack: 100k nested maps
    b'{"v":1,"id":1,"agent":"CacheManager","action":"get","args":{"key":"k"},"deadline_ms":1e999}',
    b'{"v":1,"id":1,"agent":"CacheManager","action":"get","args":{"key":NaN}}',
    b'{"v":1,"id":1,"id":2,"agent":"hub","action":"ping"}',
    b'{"v":1,"id":' + b"9" * 5000 + b',"agent":"hub","action":"ping"}',
    b"\xdd\xff\xff\xff\xff",                                      # msgpack array32 claiming 4G items
    b"\xdf\xff\xff\xff\xff",                                      # map32 claiming 4G entries
    b"\xdb\xff\xff\xff\xff",                                      # str32 claiming 4 GiB
    b"\xc7\x01\x00\x00",                                          # ext type
    b"\xd4\x01\x00",                                              # fixext
    b"\x80",                                                       # empty map
])
def test_pathological_frames(payload):
    check_frame(payload)
