"""The ``hub`` pseudo-agent answered by the bus itself: ping, health, actions, version."""
from __future__ import annotations

import os
import socket
import time
from typing import Any, Callable

from bus.handler import CallContext, Handler, action

HealthFn = Callable[[], dict]


class HubActions(Handler):
    name = "hub"

    def __init__(self, hub_name: str, version: str, health: HealthFn, describe: Callable[[], dict]):
        self.hub_name = hub_name
        self.version_string = version
        self._health = health
        self._describe = describe
        self.started_at = time.time()

    @action(inline=True, public=True)
    def ping(self, args: dict, ctx: CallContext) -> dict:
        """Liveness: answers at once from the socket loop."""
        return {"pong": True, "hub": self.hub_name, "time": time.time()}

    @action(public=True)
    def health(self, args: dict, ctx: CallContext) -> dict:
        """Health report: status ok|degraded|down and each check."""
        return self._health()

    @action(inline=True)
    def actions(self, args: dict, ctx: CallContext) -> dict:
        """The action table with request schemas, and the route table."""
        return self._describe()

    @action(inline=True)
    def version(self, args: dict, ctx: CallContext) -> dict[str, Any]:
        """Hub name, software version, wire protocol version, host and pid."""
        return {"hub": self.hub_name, "version": self.version_string, "protocol": 1, "host": socket.gethostname(),
                "pid": os.getpid(), "uptime_s": time.time() - self.started_at}
