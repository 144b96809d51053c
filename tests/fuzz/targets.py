"""What the fuzzers drive: every native action of both hubs, and one check per input frame.

``ACTIONS`` lists ``(hub, agent, action, ActionSpec)`` for every action of MemoryHub and ModelManagerSuite, read
through ``Handler.action_table()`` of each handler class (on an instance made without ``__init__``: the table
needs no services). ``check_frame(data)`` is the property every input must satisfy:

* ``bus.wire.parse_request`` returns a ``Request`` or raises ``RequestError`` carrying ``bad_request``, a known
  encoding, and an ``id`` that is None, a str or an int;
* the error reply for it encodes in that encoding and decodes back with the same id;
* when the request names a known action, that action's schema returns a dict or raises ``BadRequest``.

Anything else (another exception, a wrong code) is a bug: ``check_frame`` lets it propagate.
"""
from __future__ import annotations

from functools import lru_cache
from typing import Any, NamedTuple

from bus.errors import BadRequest
from bus.handler import ActionSpec, Handler
from bus.wire import JSON, MSGPACK, RequestError, decode, encode, error_reply, parse_request


class ActionRef(NamedTuple):
    hub: str
    agent: str
    action: str
    spec: ActionSpec


def handler_classes() -> dict[str, tuple[type[Handler], ...]]:
    from agents.memory_hub.hub import HANDLER_CLASSES as MEMORY
    from agents.model_manager_suite.hub import HANDLER_CLASSES as MODELS
    from bus.hub_actions import HubActions
    return {"memory_hub": (HubActions, *MEMORY), "model_manager_suite": (HubActions, *MODELS)}


@lru_cache(maxsize=1)
def all_actions() -> tuple[ActionRef, ...]:
    found: list[ActionRef] = []
    for hub, classes in handler_classes().items():
        for cls in classes:
            table = cls.__new__(cls).action_table()
            found.extend(ActionRef(hub, cls.name, name, spec) for name, (spec, _) in sorted(table.items()))
    return tuple(found)


@lru_cache(maxsize=1)
def action_index() -> dict[tuple[str, str], ActionSpec]:
    return {(ref.agent, ref.action): ref.spec for ref in all_actions()}


def check_frame(data: bytes) -> str:
    """Run one input through the decoder and, when it names an action, its schema. Returns the outcome."""
    try:
        request = parse_request(data)
    except RequestError as exc:
        check_error(exc)
        return "bad_frame"
    spec = action_index().get((request.agent or "", request.action or ""))
    if spec is None:
        return "parsed"
    try:
        out = spec.schema.validate(request.args)
    except BadRequest as err:
        assert err.message and err.code == "bad_request"
        return "bad_args"
    assert isinstance(out, dict)
    assert spec.schema.extra or set(out) == set(spec.schema.fields)
    return "valid"


def check_error(exc: RequestError) -> None:
    assert exc.error.code == "bad_request", exc.error.code
    assert exc.encoding in (JSON, MSGPACK)
    request_id = exc.request_id
    assert request_id is None or (isinstance(request_id, (str, int)) and not isinstance(request_id, bool))
    reply, encoding = decode(encode(error_reply(request_id, exc.error), exc.encoding))
    assert encoding == exc.encoding and reply["id"] == request_id and reply["ok"] is False


def envelope(agent: str, action: str, args: Any, request_id: Any = 1, **extra: Any) -> dict:
    return {"v": 1, "id": request_id, "agent": agent, "action": action, "args": args, **extra}
