"""Legacy-port request decoding and replies in the legacy BaseAgent vocabulary (legacy-protocol.md §0.1).

Legacy agents were REP sockets speaking single-frame UTF-8 JSON. The hub binds a ROUTER in their place
(a REQ client cannot tell the difference) and replies exactly as BaseAgent did for undecodable input.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

from bus.errors import HubError
from bus.handler import Handler

INVALID_JSON = {"status": "error", "error": "Invalid JSON request"}
INVALID_UTF8 = {"status": "error", "error": "Invalid UTF-8 request"}


@dataclass(frozen=True)
class LegacyBinding:
    handler: Handler
    port: int            # the legacy port number as declared (before PORT_OFFSET)
    bound_port: int      # after PORT_OFFSET
    health: bool


def decode_legacy(payload: bytes) -> tuple[Any, dict | None]:
    """Return (request, None) or (None, legacy_error_reply)."""
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError:
        return None, INVALID_UTF8
    try:
        return json.loads(text), None
    except ValueError:
        return None, INVALID_JSON


def encode_legacy(reply: Any) -> bytes:
    return json.dumps(reply, default=str).encode("utf-8")


def legacy_error(message: str) -> dict:
    """BaseAgent's error reply (``error`` key)."""
    return {"status": "error", "error": message}


def message_error(message: str) -> dict:
    """The error reply of most legacy agents (``message`` key)."""
    return {"status": "error", "message": message}


def no_attribute_get(request: Any) -> dict:
    """What a legacy agent answered for a JSON request that was not an object (``request.get`` failed)."""
    return message_error(f"'{type(request).__name__}' object has no attribute 'get'")


def unknown_or_blank(name: Any) -> str:
    """Agents that read ``request.get("action", "")``: a missing action reads as an empty name."""
    return f"Unknown action: {'' if name is None else name}"


def dispatch_legacy(request: Any, actions: Mapping[str, Callable[[dict], dict]], *,
                    error: Callable[[str], dict], health: Callable[[], dict] | None = None,
                    health_actions: tuple[str, ...] = ("ping", "health", "health_check"),
                    unknown: Callable[[Any], str] = lambda name: f"Unknown action: {name}",
                    errors: Sequence[tuple[type[Exception], Callable[[Any], dict]]] = (),
                    invalid: Callable[[Any], dict] | None = None) -> dict:
    """The common ``handle_legacy`` skeleton: validate, answer health, look the action up, call it.

    A non-dict request -> ``invalid(request)`` when given, else ``error("Invalid request format")``; ``request["action"]`` in ``health_actions``
    -> ``health()`` (when given); a name missing from ``actions`` (or not a string) -> ``error(unknown(name))``;
    else ``actions[name](request)``. An exception it raises is rendered by the first ``errors`` entry whose type
    matches (the renderer gets the exception), else a ``HubError`` becomes ``error(exc.message)``; anything else
    propagates (the bus answers it as BaseAgent did).
    """
    if not isinstance(request, dict):
        return invalid(request) if invalid is not None else error("Invalid request format")
    name = request.get("action")
    if health is not None and name in health_actions:
        return health()
    fn = actions.get(name) if isinstance(name, str) else None
    if fn is None:
        return error(unknown(name))
    try:
        return fn(request)
    except Exception as exc:
        render = next((render for kind, render in errors if isinstance(exc, kind)), None)
        if render is not None:
            return render(exc)
        if isinstance(exc, HubError):
            return error(exc.message)
        raise


def resolve_legacy_ports(handlers: list[Handler], agents_config: dict, offset: int, reserved: set[int],
                         enabled: bool) -> tuple[list[LegacyBinding], list[str]]:
    """Pick the legacy ports to bind, honouring per-agent config; report collisions instead of failing."""
    bindings: list[LegacyBinding] = []
    notes: list[str] = []
    taken: dict[int, str] = {port: "hub" for port in reserved}
    if not enabled:
        return bindings, ["legacy ports disabled by config"]
    for handler in handlers:
        conf = agents_config.get(handler.name, {}) or {}
        if conf.get("enabled", True) is False:
            notes.append(f"{handler.name}: legacy ports disabled by config")
            continue
        mains = [int(p) for p in conf.get("ports", handler.legacy_ports)]
        healths = [int(p) for p in conf.get("health_ports", handler.legacy_health_ports)]
        for port, is_health in [(p, False) for p in mains] + [(p, True) for p in healths]:
            bound = port + offset
            if bound in taken:
                notes.append(f"port collision: {handler.name} {'health ' if is_health else ''}port {bound} "
                             f"already used by {taken[bound]}; not bound")
                continue
            taken[bound] = f"{handler.name}{' health' if is_health else ''}"
            bindings.append(LegacyBinding(handler, port, bound, is_health))
    return bindings, notes
