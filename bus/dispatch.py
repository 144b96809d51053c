"""Transport-independent dispatch: resolve a request to a handler action, authenticate, validate, execute.

Used by the ZeroMQ router loop (native port) and by the HTTP server (REST routes). Every outcome is a
reply map; handler exceptions become typed wire errors here and nowhere else.
"""
from __future__ import annotations

import time
import traceback
from concurrent.futures import Future
from dataclasses import dataclass
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import parse_qsl, unquote

from bus.deferred import Deferred
from bus.errors import BadRequest, Conflict, Forbidden, HubError, Internal, Unauthorized, Unavailable, UnknownAction
from bus.handler import ActionSpec, CallContext, Handler, Principal
from bus.idempotency import MAX_KEY_LENGTH, Begin, IdempotencyStore, fingerprint
from bus.log import get_logger
from bus.metrics import HubMetrics
from bus.tokens import TokenService
from bus.wire import Request, error_reply, ok_reply

log = get_logger("bus.dispatch")
Reply = dict[str, Any]

ANONYMOUS = Principal(subject="anonymous", scopes=("*",))
_LATER = (Deferred, Future)          # what an action returns when its result comes later
HUB_AGENT = "hub"

# (principal, agent, action) -> None, or raise Forbidden/Unauthorized
Policy = Callable[[Principal, str, str], None]
# (principal, agent, action, outcome) after every native/HTTP call; must not block
AfterCall = Callable[[Principal | None, str, str, str], None]


@dataclass(slots=True)
class Call:
    spec: ActionSpec
    fn: Callable[[dict[str, Any], CallContext], Any]
    args: dict[str, Any]
    ctx: CallContext
    idempotency_key: str | None = None     # args.idempotency_key: run once, repeats answer the first result


class Dispatcher:
    def __init__(self, handlers: Iterable[Handler], metrics: HubMetrics, tokens: TokenService | None,
                 auth_required: bool, builtin: Handler, policies: Iterable[Policy] = (),
                 after_call: Iterable[AfterCall] = (), idempotency: IdempotencyStore | None = None):
        self.metrics = metrics
        self.idempotency = idempotency
        self.tokens = tokens
        self.auth_required = auth_required
        self.policies = list(policies)
        self.after_call = list(after_call)
        self.handlers: dict[str, Handler] = {}
        self._actions: dict[tuple[str, str], tuple[ActionSpec, Callable[[dict[str, Any], CallContext], Any]]] = {}
        self._routes: list[tuple[str, Any, str, str, str]] = []
        for handler in [builtin, *handlers]:
            self.add_handler(handler)

    def add_handler(self, handler: Handler) -> None:
        if not handler.name or handler.name in self.handlers:
            raise ValueError(f"handler name missing or duplicated: {handler.name!r}")
        self.handlers[handler.name] = handler
        for action_name, entry in handler.action_table().items():
            self._actions[(handler.name, action_name)] = entry
        for route in handler.routes:
            if (handler.name, route.action) not in self._actions:
                raise ValueError(f"route {route.method} {route.path} names unknown action {route.action}")
            self._routes.append((route.method.upper(), route.compile(), handler.name, route.action, route.path))

    # -- resolution ---------------------------------------------------------------------------------
    def resolve(self, req: Request, transport: str = "native", peer: str | None = None,
                query: dict[str, Any] | None = None) -> Call:
        text_fields: frozenset[str] = frozenset()     # path and query-string values: text the schema parses
        if req.path is not None:
            agent, action_name, args, text_fields = self._match_route(req.method or "GET", req.path, query, req.body)
        else:
            agent, action_name, args = req.agent or "", req.action or "", req.args
        entry = self._actions.get((agent, action_name))
        if entry is None:
            if agent not in self.handlers:
                raise UnknownAction(f"no agent {_shown(agent)}")
            raise UnknownAction(f"agent '{agent}' has no action {_shown(action_name)}")
        spec, fn = entry
        idempotency_key = None
        if type(args) is not dict or "idempotency_key" in args:      # most requests carry no key
            args, idempotency_key = self._idempotency_key(args, spec)
        principal = self.authenticate(req.token, agent, action_name, spec)
        deadline = time.monotonic() + req.deadline_ms / 1000 if req.deadline_ms else None
        ctx = CallContext(agent=agent, action=action_name, request_id=req.id, principal=principal,
                          deadline=deadline, transport=transport, peer=peer)
        return Call(spec=spec, fn=fn, args=spec.schema.validate(args, text_fields), ctx=ctx,
                    idempotency_key=idempotency_key)

    def _idempotency_key(self, args: Any, spec: ActionSpec) -> tuple[Any, str | None]:
        """``args`` without ``idempotency_key``, and the key (validated here, once, for every action)."""
        if not isinstance(args, dict) or "idempotency_key" not in args:
            return args, None
        args = dict(args)
        key = args.pop("idempotency_key")
        if key is None:
            return args, None
        if not isinstance(key, str) or not 1 <= len(key) <= MAX_KEY_LENGTH:
            raise BadRequest(f"idempotency_key must be a string of 1 to {MAX_KEY_LENGTH} characters",
                             details={"field": "idempotency_key"})
        if self.idempotency is None or spec.stream or spec.inline:     # inline actions are reads on the loop
            raise BadRequest("idempotency_key is not supported on this action", details={"field": "idempotency_key"})
        return args, key

    def authenticate(self, token: str | None, agent: str, action_name: str, spec: ActionSpec) -> Principal:
        if spec.public:  # a stale token must not lock a client out of `login` or `verify`
            try:
                return self.tokens.verify(token) if (token and self.tokens) else ANONYMOUS
            except Unauthorized:
                return ANONYMOUS
        if not self.auth_required or self.tokens is None:
            principal = self.tokens.verify(token) if (token and self.tokens) else ANONYMOUS
        else:
            principal = self.tokens.verify(token or "")
            if not principal.may_call(agent):
                raise Forbidden(f"token scope does not include agent '{agent}'")
        for policy in self.policies:
            policy(principal, agent, action_name)
        return principal

    def _match_route(self, method: str, path: str, query: dict[str, Any] | None,
                     body: Any) -> tuple[str, str, dict[str, Any], frozenset[str]]:
        path, _, query_string = path.partition("?")
        if query is None and query_string:
            query = dict(parse_qsl(query_string))
        if len(path) > 4096:
            raise BadRequest("path too long")
        path_matched = False
        for route_method, pattern, agent, action_name, _ in self._routes:
            match = pattern.match(path)
            if not match:
                continue
            path_matched = True
            if route_method != method:
                continue
            args: dict[str, Any] = {k: unquote(v) for k, v in match.groupdict().items()}
            for key, value in (query or {}).items():
                args.setdefault(key, value)
            text_fields = frozenset(args)
            if isinstance(body, dict):
                for key, value in body.items():
                    args.setdefault(key, value)
            elif body is not None:
                args.setdefault("body", body)
            return agent, action_name, args, text_fields
        if path_matched:
            raise UnknownAction(f"method {_shown(method)} not allowed on {_shown(path)}")
        raise UnknownAction(f"no route {_shown(method)} {_shown(path)}")

    # -- execution ----------------------------------------------------------------------------------
    def execute(self, call: Call, on_done: Callable[[Reply], None] | None = None) -> Reply | None:
        """Run the action (once per idempotency key); return the reply map (never raises).

        An action may return a ``Deferred`` or a ``concurrent.futures.Future`` (work finishing later). With
        ``on_done``, ``execute`` then returns None at once and ``on_done(reply)`` is called on the thread that
        completes the future; without it, or with an idempotency key (whose result is recorded before the
        reply), the caller waits for the future here."""
        if call.idempotency_key is not None and self.idempotency is not None:
            return self._execute_once(call, self.idempotency)
        return self._execute(call, on_done)

    def _execute_once(self, call: Call, store: IdempotencyStore) -> Reply:
        subject = call.ctx.principal.subject if call.ctx.principal else ANONYMOUS.subject
        key, print_ = call.idempotency_key, fingerprint(call.ctx.agent, call.ctx.action, call.args)
        assert key is not None      # ``execute`` comes here for calls with a key only
        try:
            begun = self._claim(store, subject, key, print_, call.ctx)
        except HubError as err:
            return error_reply(call.ctx.request_id, err)
        except Exception as exc:
            log.error("idempotency_store_failed", error=repr(exc))
            return error_reply(call.ctx.request_id, Unavailable("idempotency store unavailable; retry later"))
        if begun.state == "done":
            return ok_reply(call.ctx.request_id, begun.result, replayed=True)
        reply = self._execute(call)
        assert reply is not None      # without on_done the reply is always returned
        try:
            if reply["ok"]:
                store.finish(subject, key, reply["result"])
            else:
                store.abandon(subject, key)
        except Exception as exc:   # the call ran and is answered; only a later repeat may run it again
            log.error("idempotency_record_failed", key=key, error=repr(exc))
        return reply

    @staticmethod
    def _claim(store: IdempotencyStore, subject: str, key: str, print_: str, ctx: CallContext) -> Begin:
        """``Begin`` new or done; waits while an earlier call with the key runs (up to the deadline)."""
        remaining = ctx.remaining()
        until = time.monotonic() + (remaining if remaining is not None else 30.0)
        while True:
            begun = store.begin(subject, key, print_)
            if begun.state == "mismatch":
                raise Conflict("idempotency_key was used for a different request", details={"field": "idempotency_key"})
            if begun.state != "running":
                return begun
            if time.monotonic() >= until:
                raise Unavailable("a request with this idempotency_key is still running; retry later")
            time.sleep(0.05)

    def _execute(self, call: Call, on_done: Callable[[Reply], None] | None = None) -> Reply | None:
        try:
            result = call.fn(call.args, call.ctx)
        except Exception as exc:
            return self._finish(call, self._error_reply(call, exc))
        if not isinstance(result, _LATER):
            return self._finish(call, ok_reply(call.ctx.request_id, result))
        if on_done is None:
            return self._finish(call, self._settled(call, result, wait=True))
        result.add_done_callback(lambda future: on_done(self._finish(call, self._settled(call, future))))
        return None

    def _settled(self, call: Call, future: Future[Any] | Deferred[Any], wait: bool = False) -> Reply:
        try:
            value = future.result(None if wait else 0)      # done already unless waiting
        except Exception as exc:
            return self._error_reply(call, exc)
        return ok_reply(call.ctx.request_id, value)

    def _error_reply(self, call: Call, exc: Exception) -> Reply:
        if isinstance(exc, HubError):
            return error_reply(call.ctx.request_id, exc)
        # the edge: anything unexpected is `internal`, logged with its traceback
        log.error("handler_failed", agent=call.ctx.agent, action=call.ctx.action, error=repr(exc),
                  traceback="".join(traceback.format_exception(type(exc), exc, exc.__traceback__)))
        return error_reply(call.ctx.request_id, Internal("internal error; see the hub log"))

    def _finish(self, call: Call, reply: Reply) -> Reply:
        if self.after_call:
            self._after(call, "ok" if reply["ok"] else reply["error"]["code"])
        return reply

    def _after(self, call: Call, outcome: str) -> None:
        for hook in self.after_call:
            try:
                hook(call.ctx.principal, call.ctx.agent, call.ctx.action, outcome)
            except Exception as exc:
                log.error("after_call_hook_failed", error=repr(exc))

    def route_table(self) -> list[tuple[str, str, str, str, ActionSpec]]:
        """``(method, path template, agent, action, spec)`` for every REST route (the OpenAPI document)."""
        return [(m, raw, a, n, self._actions[(a, n)][0]) for m, _, a, n, raw in self._routes]

    def describe_actions(self) -> dict[str, Any]:
        table: dict[str, dict[str, Any]] = {}
        for (agent, action_name), (spec, _) in sorted(self._actions.items()):
            table.setdefault(agent, {})[action_name] = {"doc": spec.doc, "schema": spec.schema.describe(),
                                                         "stream": spec.stream, "public": spec.public}
        routes = [{"method": m, "path": raw, "agent": a, "action": n} for m, _, a, n, raw in self._routes]
        return {"actions": table, "routes": routes}


def _shown(name: str, limit: int = 64) -> str:
    """A client-supplied name as echoed in an error: quoted, and cut so a huge one is not sent back."""
    return repr(name if len(name) <= limit else name[:limit] + "...")
