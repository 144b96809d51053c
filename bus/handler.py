"""The contract between the bus and the in-process handler classes.

A hub is a list of ``Handler`` instances. The bus knows nothing of memory or models; it only knows
this contract:

* ``name`` (class attribute): the legacy agent name, e.g. ``"CacheManager"``. Native requests address
  it as ``{"agent": name, "action": ...}``.
* ``legacy_ports`` / ``legacy_health_ports`` (class attributes): the legacy main and health ports, before
  ``PORT_OFFSET``. Config may override or switch them off per agent.
* Native actions: methods decorated with ``@action(schema)``. The bus validates the request ``args``
  against the schema and calls ``method(args, ctx)`` on a worker thread (or inline when
  ``inline=True``, for actions that never block). The return value is the ``result``; raise a
  ``bus.errors.HubError`` subclass for an error reply. An action whose work finishes on a thread of its
  own (a model's) returns a ``concurrent.futures.Future`` (or a ``bus.deferred.Deferred``) instead: its worker
  is released at once and the bus replies when it completes (its result, or its exception mapped like a
  raised one).
* ``routes``: the seed REST table for this agent, ``Route("GET", "/kv/{key}", "kv_get")``. Path
  parameters, then the query string (HTTP), then the body are merged into the action's args.
* Legacy main ports: a handler declares ``legacy_vocabulary`` (how the agent worded its errors) and
  ``legacy_table(call)`` (legacy action name -> method, the exceptions it renders itself); the one
  ``bus.legacy.LegacyAdapter`` does the lookup, field checks, error replies and counts (``bus/legacy.py``;
  the daemon exports the counts as ``hub_legacy_actions_total``). The default table answers
  ``ping``/``health``/``health_check`` with ``legacy_health``; anything else gets BaseAgent's
  ``{"status": "error", "error": "Unknown action: X"}``.
* ``handle_legacy(request, port)``: the legacy reply (a dict) to the JSON value received on a legacy main
  port. It must not raise for bad input: legacy errors are replies in the agent's own vocabulary. If it
  raises anyway, the bus answers as the legacy BaseAgent did: ``{"status": "error", "error": str(exc)}``.
* ``handle_legacy_from(request, port, peer)``: what the bus calls; the default ignores the peer address and
  calls ``handle_legacy``. Handlers that limit legacy clients per peer (auth, trust writes) override it to
  answer ``legacy_reply(request, LegacyCall(port, peer))``.
* ``legacy_health(port)``: the reply to *any* message on a legacy health port.
* ``health_checks()``: ``{"check_name": (ok: bool, detail)}`` merged into the hub's ``/health``.
* ``start()`` / ``stop()``: background tasks (called once by the hub, after / before the sockets).
* ``watched()``: objects the router loop polls for the handler (non-blocking I/O without a thread hop):
  each has ``fileno()`` (an int, or None while it has nothing to poll; it may change), ``ready()`` (called
  on the router thread when that descriptor is readable) and ``tick()`` (called before every poll; it returns
  True when it still has output it could not write, and the loop then polls again within a millisecond). They
  must never block. An ``inline`` action may return a ``Deferred`` (cheaper than a ``Future``) that such an
  object completes.

Handlers get their dependencies (their typed settings sections, stores, an ``EventPublisher``) through
``__init__`` from the hub's composition code; they never open sockets and never read the environment.
"""
from __future__ import annotations

import itertools
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from typing import Any, ClassVar

from bus.legacy import BASE_AGENT, LegacyAdapter, LegacyCall, LegacyTable, LegacyVocabulary
from schemas.base import EMPTY, Schema


@dataclass(frozen=True)
class Route:
    method: str
    path: str          # e.g. "/kv/{key}"; a parameter matches one path segment, "{name:path}" the rest
    action: str

    def compile(self) -> re.Pattern[str]:
        pattern = re.sub(r"\{(\w+):path\}", r"(?P<\1>.+)", self.path)
        pattern = re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", pattern)
        return re.compile("^" + pattern + "$")


@dataclass(slots=True)
class CallContext:
    """What the bus knows about one call; handlers may read it, never sockets."""

    agent: str
    action: str
    request_id: Any = None
    principal: Principal | None = None
    deadline: float | None = None          # time.monotonic() value, or None
    transport: str = "native"              # native | http | legacy
    peer: str | None = None
    stream: Callable[[Any], None] | None = None   # set when the client asked for streaming

    def remaining(self) -> float | None:
        return None if self.deadline is None else self.deadline - time.monotonic()


@dataclass(frozen=True)
class Principal:
    subject: str
    scopes: tuple[str, ...] = ("*",)
    token_id: str | None = None
    expires_at: float | None = None
    claims: dict[str, Any] = field(default_factory=dict)

    def may_call(self, agent: str) -> bool:
        return "*" in self.scopes or agent in self.scopes


@dataclass(frozen=True)
class ActionSpec:
    name: str
    schema: Schema
    inline: bool
    doc: str
    stream: bool = False
    public: bool = False   # callable without a token (hub ping/health only, normally)


def action(schema: Schema = EMPTY, *, name: str | None = None, inline: bool = False, stream: bool = False,
           public: bool = False) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Mark a handler method as a native action with its request schema."""

    def mark(fn: Callable[..., Any]) -> Callable[..., Any]:
        spec = ActionSpec(name or fn.__name__, schema, inline, (fn.__doc__ or "").strip(), stream, public)
        fn.__hub_action__ = spec  # type: ignore[attr-defined]
        return fn

    return mark


class Handler:
    name: ClassVar[str] = ""
    legacy_ports: ClassVar[tuple[int, ...]] = ()
    legacy_health_ports: ClassVar[tuple[int, ...]] = ()
    routes: ClassVar[tuple[Route, ...]] = ()
    legacy_vocabulary: ClassVar[LegacyVocabulary] = BASE_AGENT
    legacy_request_count: int = 0     # requests on the legacy main ports so far (some agents' health shows it)

    def action_table(self) -> dict[str, tuple[ActionSpec, Callable[[dict[str, Any], CallContext], Any]]]:
        found: dict[str, tuple[ActionSpec, Callable[[dict[str, Any], CallContext], Any]]] = {}
        for attr in dir(type(self)):
            fn = getattr(type(self), attr, None)
            spec = getattr(fn, "__hub_action__", None)
            if spec is not None:
                found[spec.name] = (spec, getattr(self, attr))
        return found

    def legacy_table(self, call: LegacyCall) -> LegacyTable:
        """This agent's legacy actions (the default: the health actions only)."""
        def health(_request: dict[str, Any]) -> dict[str, Any]:
            return self.legacy_health(call.port)

        return LegacyTable({"ping": health, "health": health, "health_check": health})

    @cached_property
    def legacy_adapter(self) -> LegacyAdapter:
        return LegacyAdapter(self.name, self.legacy_vocabulary)

    def legacy_reply(self, request: Any, call: LegacyCall) -> dict[str, Any]:
        return self.legacy_adapter.handle(request, self.legacy_table(call))

    def handle_legacy(self, request: Any, port: int) -> dict[str, Any]:
        self.legacy_request_count = next(self._legacy_requests)
        return self.legacy_reply(request, LegacyCall(port))

    @cached_property
    def _legacy_requests(self) -> itertools.count[int]:
        return itertools.count(1)

    def handle_legacy_from(self, request: Any, port: int, peer: str | None) -> dict[str, Any]:
        return self.handle_legacy(request, port)

    def legacy_health(self, port: int) -> dict[str, Any]:
        return base_legacy_health(self.name, self._started_at)

    def health_checks(self) -> dict[str, tuple[bool, Any]]:
        return {}

    def watched(self) -> list[Any]:
        return []

    def start(self) -> None:
        pass

    def stop(self) -> None:
        pass

    _started_at: float = time.time()


def base_legacy_health(name: str, started_at: float, **extra: Any) -> dict[str, Any]:
    """The legacy BaseAgent ``_get_health_status()`` reply (legacy-protocol.md §0.1)."""
    reply = {
        "status": "ok",
        "ready": True,
        "initialized": True,
        "message": f"{name} is healthy",
        "timestamp": datetime.now().isoformat(),
        "uptime": time.time() - started_at,
        "active_threads": threading.active_count(),
    }
    reply.update(extra)
    return reply
