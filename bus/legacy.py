"""The legacy ports: request decoding, and the one adapter that answers every legacy agent's requests.

Legacy agents were REP sockets speaking single-frame UTF-8 JSON. The hub binds a ROUTER in their place (a REQ
client cannot tell the difference). Each handler declares, in its own module:

* its ``legacy_vocabulary`` (a ``LegacyVocabulary``): how that agent worded its errors (the reply key, the
  unknown-action, missing-field, mistyped-field, non-object and undecodable-request texts);
* its ``legacy_table(call)`` (a ``LegacyTable``): legacy action name -> method (or a ``LegacyAction`` with the
  fields it expects and their types), plus the exceptions it renders in a reply of its own.

``LegacyAdapter`` does the rest, the same way for every agent: it looks the action up, checks the declared
fields, calls the method, renders errors in the agent's vocabulary and counts outcomes per action (in memory,
and for each of its ``observers``: the daemon adds the ``hub_legacy_actions_total`` counter). The adapter
knows nothing of memory or models.
"""
from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from bus.errors import HubError

if TYPE_CHECKING:
    from bus.handler import Handler

Reply = dict[str, Any]
OutcomeObserver = Callable[[str, str, str], None]     # (agent, action, outcome)
LegacyMethod = Callable[[dict[str, Any]], Reply]
FieldType = type | tuple[type, ...]

# outcomes counted by LegacyAdapter, per action
OK, UNKNOWN_ACTION, NOT_AN_OBJECT, BAD_INPUT, ERROR, INTERNAL = (
    "ok", "unknown_action", "not_an_object", "bad_input", "error", "internal")
UNKNOWN_NAME = "(unknown)"     # the action label of unknown actions and non-object requests (bounded labels)


@dataclass(frozen=True)
class LegacyVocabulary:
    """How one legacy agent worded its error replies: ``{"status": status, key: text}``.

    Templates: ``{action}`` the requested action name, ``{field}`` a field name, ``{type}`` the Python type
    name of a JSON request that was not an object (``list``, ``str``, ``int``, ``NoneType``, ...).
    """

    key: str = "message"                              # "message" (most agents), "error" (BaseAgent), "reason"
    status: str = "error"
    unknown_action: str = "Unknown action: {action}"
    missing_action: str = "None"                      # what {action} reads when the request has no "action"
    null_action: str = "None"                         # ... and when it is null
    missing_field: str = "Missing {field} parameter"
    mistyped_field: str = "Invalid {field} parameter"
    not_an_object: str = "Invalid request format"
    not_an_object_key: str | None = None              # when the agent answered it under another key
    # undecodable input never reached the legacy agents' code: BaseAgent answered it, for every agent
    invalid_json: str = "Invalid JSON request"
    invalid_utf8: str = "Invalid UTF-8 request"
    undecodable_key: str = "error"

    def error(self, text: str) -> Reply:
        return {"status": self.status, self.key: text}

    def unknown(self, request: Mapping[str, Any]) -> Reply:
        name = request.get("action")
        if name is not None:
            return self.error(self.unknown_action.format(action=name))
        shown = self.missing_action if "action" not in request else self.null_action
        return self.error(self.unknown_action.format(action=shown))

    def not_an_object_reply(self, request: Any) -> Reply:
        return {"status": self.status,
                self.not_an_object_key or self.key: self.not_an_object.format(type=type(request).__name__)}

    def undecodable(self, text: str) -> Reply:
        return {"status": "error", self.undecodable_key: text}


BASE_AGENT = LegacyVocabulary(key="error", not_an_object="Unknown action: None")
"""BaseAgent's own replies (a handler that declares no vocabulary)."""


@dataclass(frozen=True)
class LegacyAction:
    """A legacy action with the request fields it expects, checked before the call.

    ``required``: fields that must be present and neither null nor "" (else ``missing_field``); ``fields``:
    name -> type(s) a present, non-null field must have (else ``mistyped_field``; ``bool`` is not an ``int``
    unless listed).
    """

    method: LegacyMethod
    required: tuple[str, ...] = ()
    fields: Mapping[str, FieldType] = field(default_factory=dict)

    def problem(self, request: Mapping[str, Any], vocabulary: LegacyVocabulary) -> str | None:
        for name in self.required:
            if request.get(name) in (None, ""):
                return vocabulary.missing_field.format(field=name)
        for name, expected in self.fields.items():
            value = request.get(name)
            if value is not None and not _is_a(value, expected):
                return vocabulary.mistyped_field.format(field=name)
        return None


def _is_a(value: Any, expected: FieldType) -> bool:
    kinds = expected if isinstance(expected, tuple) else (expected,)
    if isinstance(value, bool) and bool not in kinds:
        return False
    return isinstance(value, kinds)


class LegacyInputError(Exception):
    """Bad input, raised by a legacy method: answered ``vocabulary.error(str(exc))``, in the agent's words."""


ErrorRenderer = tuple[type[BaseException], Callable[[Any], Reply]]


@dataclass(frozen=True)
class LegacyTable:
    """One agent's legacy actions.

    ``actions``: name -> method (called with the request object) or ``LegacyAction``. Health actions are
    entries like any other. ``errors``: (exception type, renderer) pairs, first match wins; a
    ``LegacyInputError`` or ``HubError`` that none matches is answered ``vocabulary.error(message)``; any
    other exception propagates (the bus
    answers it as BaseAgent did, ``{"status": "error", "error": str(exc)}``, and reports it).
    ``without_action``: what the agent did with an object whose ``action`` is missing or falsy (None: the
    unknown-action reply). ``not_an_object``: a reply of its own for a request that is not an object (None:
    the vocabulary's).
    """

    actions: Mapping[str, LegacyMethod | LegacyAction]
    errors: Sequence[ErrorRenderer] = ()
    without_action: LegacyMethod | None = None
    not_an_object: Callable[[Any], Reply] | None = None


@dataclass(frozen=True)
class LegacyCall:
    """What the bus knows about one legacy request besides its body."""

    port: int                  # the legacy port as declared (before PORT_OFFSET)
    peer: str | None = None    # the client's IP address, when known


class LegacyAdapter:
    """Answers one agent's legacy requests from its table, in its vocabulary, and reports every outcome.

    ``observers`` (the daemon adds the ``hub_legacy_actions_total`` counter) are told every outcome as
    ``(agent, action, outcome)``, on the calling thread; they must not block or raise. Unknown actions and
    non-objects are reported as ``(unknown)``, so the action names stay a bounded set.
    """

    def __init__(self, agent: str, vocabulary: LegacyVocabulary):
        self.agent = agent
        self.vocabulary = vocabulary
        self.observers: list[OutcomeObserver] = []

    def handle(self, request: Any, table: LegacyTable) -> Reply:
        if not isinstance(request, dict):
            self._count(UNKNOWN_NAME, NOT_AN_OBJECT)
            if table.not_an_object is not None:
                return table.not_an_object(request)
            return self.vocabulary.not_an_object_reply(request)
        name = request.get("action")
        if table.without_action is not None and not name:
            return self._call("", table.without_action, request, table)
        found = table.actions.get(name) if isinstance(name, str) else None
        if found is None:
            self._count(UNKNOWN_NAME, UNKNOWN_ACTION)
            return self.vocabulary.unknown(request)
        assert isinstance(name, str)
        if isinstance(found, LegacyAction):
            problem = found.problem(request, self.vocabulary)
            if problem is not None:
                self._count(name, BAD_INPUT)
                return self.vocabulary.error(problem)
            return self._call(name, found.method, request, table)
        return self._call(name, found, request, table)

    def _call(self, name: str, method: LegacyMethod, request: dict[str, Any], table: LegacyTable) -> Reply:
        try:
            reply = method(request)
        except Exception as exc:
            render = next((render for kind, render in table.errors if isinstance(exc, kind)), None)
            if render is not None:
                self._count(name, ERROR)
                return render(exc)
            if isinstance(exc, LegacyInputError):
                self._count(name, BAD_INPUT)
                return self.vocabulary.error(str(exc))
            if isinstance(exc, HubError):
                self._count(name, ERROR)
                return self.vocabulary.error(exc.message)
            self._count(name, INTERNAL)
            raise
        self._count(name, OK)
        return reply

    def _count(self, name: str, outcome: str) -> None:
        for observe in self.observers:
            observe(self.agent, name, outcome)


@dataclass(frozen=True)
class LegacyBinding:
    handler: Handler
    port: int            # the legacy port number as declared (before PORT_OFFSET)
    bound_port: int      # after PORT_OFFSET
    health: bool


def decode_legacy(payload: bytes, vocabulary: LegacyVocabulary = BASE_AGENT) -> tuple[Any, Reply | None]:
    """Return (request, None) or (None, the undecodable-request reply)."""
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError:
        return None, vocabulary.undecodable(vocabulary.invalid_utf8)
    try:
        return json.loads(text), None
    except ValueError:
        return None, vocabulary.undecodable(vocabulary.invalid_json)


def encode_legacy(reply: Any) -> bytes:
    return json.dumps(reply, default=str).encode("utf-8")


def legacy_error(message: str) -> Reply:
    """BaseAgent's error reply (``error`` key): the bus's own replies (timeouts, busy, a handler that raised)."""
    return {"status": "error", "error": message}


def message_error(message: str) -> Reply:
    """The error reply of most legacy agents (``message`` key)."""
    return {"status": "error", "message": message}


def resolve_legacy_ports(handlers: list[Handler], agents_config: Mapping[str, Any], offset: int, reserved: set[int],
                         enabled: bool) -> tuple[list[LegacyBinding], list[str]]:
    """Pick the legacy ports to bind, honouring per-agent config; report collisions instead of failing."""
    bindings: list[LegacyBinding] = []
    notes: list[str] = []
    taken: dict[int, str] = dict.fromkeys(reserved, "hub")
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
