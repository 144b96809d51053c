"""Frame codec and the native request/reply envelope (DESIGN.md §3.1).

A payload is a msgpack map, or a JSON object when its first byte is ``{``; the reply uses the request's
encoding. ``parse_request`` turns bytes into a ``Request`` or raises a typed error (with whatever
``id`` and encoding could be recovered, so the error reply still echoes them).
"""
from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from itertools import repeat
from typing import Any

import msgpack

from bus.errors import BadRequest, HubError

PROTOCOL_VERSION = 1
JSON, MSGPACK = "json", "msgpack"
MAX_NESTING = 64                          # containers inside args/body; deeper input is `bad_request`
MAX_DEADLINE_MS = 24 * 3600 * 1000        # a deadline beyond a day is a client bug, not a wish


@dataclass(slots=True)
class Request:
    encoding: str
    id: Any = None
    agent: str | None = None
    action: str | None = None
    args: dict[str, Any] = field(default_factory=dict)
    method: str | None = None
    path: str | None = None
    body: Any = None
    token: str | None = None
    deadline_ms: int | None = None
    stream: bool = False


class RequestError(Exception):
    """A typed error plus what is known of the request, for the error reply."""

    def __init__(self, error: HubError, encoding: str, request_id: Any = None):
        super().__init__(error.message)
        self.error = error
        self.encoding = encoding
        self.request_id = request_id


def detect_encoding(payload: bytes) -> str:
    return JSON if payload[:1] == b"{" else MSGPACK


def decode(payload: bytes) -> tuple[Any, str]:
    encoding = detect_encoding(payload)
    try:
        if encoding == JSON:
            return json.loads(payload.decode("utf-8")), encoding
        return msgpack.unpackb(payload, raw=False, strict_map_key=False), encoding
    except (ValueError, UnicodeDecodeError, msgpack.ExtraData, msgpack.FormatError, msgpack.StackError,
            TypeError) as exc:
        raise RequestError(BadRequest(f"undecodable {encoding} frame: {type(exc).__name__}"), encoding) from exc
    except Exception as exc:  # msgpack can raise a variety of errors on hostile input
        raise RequestError(BadRequest(f"undecodable {encoding} frame"), encoding) from exc


def encode(obj: Any, encoding: str) -> bytes:
    if encoding == JSON:
        return json.dumps(obj, default=_json_default, separators=(",", ":")).encode("utf-8")
    try:
        packer: msgpack.Packer = _packers.packer
    except AttributeError:
        packer = _packers.packer = msgpack.Packer(use_bin_type=True, default=_msgpack_default)
    data: bytes = packer.pack(obj)    # a Packer per thread, reused: ``packb`` builds one per call (half its cost)
    if len(data) > _KEPT_PACKER_BYTES:
        del _packers.packer           # its buffer keeps the size of the largest reply: do not hold a big one
    return data


_KEPT_PACKER_BYTES = 1 << 20


_packers = threading.local()


ENVELOPE_FIELDS = frozenset({"v", "id", "agent", "action", "args", "method", "path", "body", "token", "deadline_ms",
                             "stream"})
_AGENT_FORM_FIELDS = ENVELOPE_FIELDS - {"method", "path"}


def parse_request(payload: bytes) -> Request:
    data, encoding = decode(payload)
    request = _parse_common(data, payload, encoding)
    return request if request is not None else _parse_checked(data, payload, encoding)


def _parse_common(data: Any, payload: bytes, encoding: str) -> Request | None:
    """The usual agent/action envelope, built without the field-by-field walk; None for anything else
    (then ``_parse_checked`` decides, and words the error when there is one)."""
    if type(data) is not dict or not data.keys() <= _AGENT_FORM_FIELDS:
        return None
    get = data.get
    request_id, agent, action, token, args = get("id"), get("agent"), get("action"), get("token"), get("args")
    deadline, stream = get("deadline_ms"), get("stream", False)
    if (type(agent) is not str or type(action) is not str or not agent or not action
            or get("v", PROTOCOL_VERSION) != PROTOCOL_VERSION
            or (request_id is not None and type(request_id) is not str and type(request_id) is not int)
            or (token is not None and type(token) is not str) or (args is not None and type(args) is not dict)
            or (deadline is not None and (type(deadline) is not int or not 0 < deadline <= MAX_DEADLINE_MS))
            or type(stream) is not bool or _container_bytes(payload, encoding) > MAX_NESTING):
        return None
    return Request(encoding, request_id, agent, action, args or {}, None, None, get("body"), token, deadline, stream)


def _parse_checked(data: Any, payload: bytes, encoding: str) -> Request:
    if not isinstance(data, dict):
        raise RequestError(BadRequest(f"request must be a map, got {type(data).__name__}"), encoding)
    request_id = data.get("id")
    if request_id is not None and (not isinstance(request_id, (str, int)) or isinstance(request_id, bool)):
        raise RequestError(BadRequest("field 'id' must be a string or an integer"), encoding)

    def fail(message: str) -> RequestError:
        return RequestError(BadRequest(message), encoding, request_id)

    version = data.get("v", PROTOCOL_VERSION)
    if version != PROTOCOL_VERSION:
        raise fail(f"unsupported protocol version {version!r}; this hub speaks v{PROTOCOL_VERSION}")
    req = Request(encoding=encoding, id=request_id)
    for name, kinds in (("agent", str), ("action", str), ("method", str), ("path", str), ("token", str)):
        value = data.get(name)
        if value is not None and not isinstance(value, kinds):
            raise fail(f"field '{name}' must be a string")
        setattr(req, name, value)
    args = data.get("args")
    if args is not None and not isinstance(args, dict):
        raise fail("field 'args' must be a map")
    req.args = args or {}
    req.body = data.get("body")
    if _container_bytes(payload, encoding) > MAX_NESTING and (
            nesting_exceeds(req.args, MAX_NESTING) or nesting_exceeds(req.body, MAX_NESTING)):
        raise fail(f"args or body nested deeper than {MAX_NESTING} levels")
    deadline = data.get("deadline_ms")
    if deadline is not None and (not isinstance(deadline, int) or isinstance(deadline, bool)
                                 or not 0 < deadline <= MAX_DEADLINE_MS):
        raise fail(f"field 'deadline_ms' must be an integer between 1 and {MAX_DEADLINE_MS}")
    req.deadline_ms = deadline
    stream = data.get("stream", False)
    if not isinstance(stream, bool):
        raise fail("field 'stream' must be a boolean")
    req.stream = stream
    if req.path is not None:
        if req.agent is not None or req.action is not None:
            raise fail("use either agent/action or method/path, not both")
        req.method = (req.method or "GET").upper()
    elif not req.agent or not req.action:
        raise fail("missing field 'agent' and 'action' (or 'method' and 'path')")
    unknown = set(data) - ENVELOPE_FIELDS
    if unknown:
        raise fail(f"unknown envelope field '{sorted(map(str, unknown))[0]}'")
    return req


_CONTAINER_TYPES = (dict, list)
_MSGPACK_CONTAINERS = bytes([*range(0x80, 0xA0), 0xDC, 0xDD, 0xDE, 0xDF])


def _container_bytes(payload: bytes, encoding: str) -> int:
    """An upper bound on the number of maps/lists in a frame (every one starts with such a byte), counted in C:
    the walk of ``nesting_exceeds`` only runs for the rare frame that could be too deep."""
    markers = b"[{" if encoding == JSON else _MSGPACK_CONTAINERS
    return len(payload) - len(payload.translate(None, markers))


def nesting_exceeds(value: Any, limit: int) -> bool:
    """True when maps/lists nest more than ``limit`` levels (checked without recursion)."""
    stack = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        children = node.values() if isinstance(node, dict) else node if isinstance(node, list) else None
        if children is None:
            continue
        if depth > limit:
            return True
        if any(map(isinstance, children, repeat(_CONTAINER_TYPES))):   # C-speed scan of long scalar lists
            stack.extend((child, depth + 1) for child in children if isinstance(child, _CONTAINER_TYPES))
    return False


def ok_reply(request_id: Any, result: Any, **extra: Any) -> dict[str, Any]:
    reply = {"v": PROTOCOL_VERSION, "id": request_id, "ok": True, "result": result}
    reply.update(extra)
    return reply


def error_reply(request_id: Any, error: HubError) -> dict[str, Any]:
    return {"v": PROTOCOL_VERSION, "id": request_id, "ok": False, "error": error.to_wire()}


def _json_default(obj: Any) -> Any:
    if isinstance(obj, bytes):
        return obj.decode("utf-8", "replace")
    if isinstance(obj, (set, tuple)):
        return list(obj)
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if hasattr(obj, "isoformat"):
        return obj.isoformat()
    return str(obj)


def _msgpack_default(obj: Any) -> Any:
    if isinstance(obj, set):
        return list(obj)
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if hasattr(obj, "isoformat"):
        return obj.isoformat()
    return str(obj)
