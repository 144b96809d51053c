"""The ``hub`` pseudo-agent answered by the bus itself: ping, health, actions, version."""
from __future__ import annotations

import os
import socket
import time
from typing import Any
from collections.abc import Callable

from bus.errors import BadRequest, Unauthorized
from bus.handler import CallContext, Handler, Principal, action
from bus.tokens import TokenService
from schemas.base import Field, Schema

HealthFn = Callable[[], dict[str, Any]]
LOGOUT = Schema({"token": Field(str, min_len=1, max_len=8192, doc="token to revoke; default: the caller's own")},
                doc="Public: revoke a token on this hub until it expires (holding it is the right to revoke it).")


class HubActions(Handler):
    name = "hub"

    def __init__(self, hub_name: str, version: str, health: HealthFn, describe: Callable[[], dict[str, Any]],
                 tokens: TokenService | None = None, revoke: Callable[[Principal], None] | None = None):
        self.hub_name = hub_name
        self._tokens = tokens
        self._revoke = revoke
        self.version_string = version
        self._health = health
        self._describe = describe
        self.started_at = time.time()

    @action(inline=True, public=True)
    def ping(self, args: dict[str, Any], ctx: CallContext) -> dict[str, Any]:
        """Liveness: answers at once from the socket loop."""
        return {"pong": True, "hub": self.hub_name, "time": time.time()}

    @action(public=True)
    def health(self, args: dict[str, Any], ctx: CallContext) -> dict[str, Any]:
        """Health report: status ok|degraded|down and each check."""
        return self._health()

    @action(inline=True)
    def actions(self, args: dict[str, Any], ctx: CallContext) -> dict[str, Any]:
        """The action table with request schemas, and the route table."""
        return self._describe()

    @action(inline=True)
    def version(self, args: dict[str, Any], ctx: CallContext) -> dict[str, Any]:
        """Hub name, software version, wire protocol version, host and pid."""
        return {"hub": self.hub_name, "version": self.version_string, "protocol": 1, "host": socket.gethostname(),
                "pid": os.getpid(), "uptime_s": time.time() - self.started_at}

    @action(LOGOUT, public=True)
    def logout(self, args: dict[str, Any], ctx: CallContext) -> dict[str, Any]:
        """Public: revoke the given token, or the caller's own."""
        if args["token"]:
            if self._tokens is None:
                raise BadRequest("this hub has no token service")
            try:
                principal = self._tokens.verify(args["token"])
            except Unauthorized as exc:
                raise Unauthorized("Invalid token", details={"reason": exc.message}) from exc
        elif ctx.principal is not None and ctx.principal.token_id:
            principal = ctx.principal
        else:
            raise BadRequest("missing field 'token'", details={"field": "token"})
        if self._revoke is None:
            raise BadRequest("this hub cannot revoke tokens")
        self._revoke(principal)
        return {"revoked": principal.token_id, "expires_at": principal.expires_at}
