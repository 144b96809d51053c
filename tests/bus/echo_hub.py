"""A hub with test handlers only, run as ``python -m tests.bus.echo_hub``: exercises the bus alone."""
from __future__ import annotations

import sys
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, ClassVar

from bus.config import ConfigError
from bus.daemon import Assembly, HubSpec, Runtime, main as run_daemon
from bus.errors import Conflict, Forbidden, NotFound, Unavailable
from bus.handler import CallContext, Handler, Route, action
from bus.settings import setting
from schemas.base import ANY, Field, Schema

class BrokenSchema(Schema):
    """A schema with a defect (it raises what no schema should): the router must survive it."""

    def validate(self, args: Any, text_fields: Any = ()) -> dict[str, Any]:
        raise TypeError("a defect in a schema")


ERRORS = {"not_found": NotFound, "conflict": Conflict, "unavailable": Unavailable, "forbidden": Forbidden}


class EchoAgent(Handler):
    name = "EchoAgent"
    legacy_ports = (7102,)
    legacy_health_ports = (8102,)
    routes = (Route("GET", "/echo/{word}", "echo"), Route("POST", "/echo", "echo"), Route("GET", "/words", "words"))

    @action(Schema({"word": Field(str, required=True, max_len=1000), "n": Field(int, min=0, max=10, default=1),
                    "extra": Field(ANY)}))
    def echo(self, args: dict, ctx: CallContext) -> dict:
        """Repeat a word n times."""
        return {"word": args["word"] * args["n"], "extra": args["extra"],
                "caller": ctx.principal.subject if ctx.principal else None}

    @action(BrokenSchema({}))
    def broken(self, args: dict, ctx: CallContext) -> dict:
        """Never reached: its schema raises."""
        return {}

    @action(Schema({"limit": Field(int, min=1, max=100, default=10), "ratio": Field(float, min=0, max=1),
                    "exact": Field(bool, default=False), "tags": Field(list, item=Field(int), max_len=5)}))
    def words(self, args: dict, ctx: CallContext) -> dict:
        """The arguments as the action received them, with their type names (for the query-string tests)."""
        return {name: [value, type(value).__name__] for name, value in args.items()}

    @action(Schema({"seconds": Field(float, required=True, min=0, max=30)}))
    def sleep(self, args: dict, ctx: CallContext) -> dict:
        """Block a worker for a while."""
        time.sleep(args["seconds"])
        return {"slept": args["seconds"]}

    @action(Schema({"code": Field(str, required=True)}))
    def fail(self, args: dict, ctx: CallContext) -> dict:
        """Raise the typed error named by code (anything else: an untyped exception)."""
        error = ERRORS.get(args["code"])
        if error:
            raise error(f"asked to fail with {args['code']}")
        raise RuntimeError("secret internal detail")

    @action(Schema({"n": Field(int, required=True, min=0, max=1000)}), stream=True)
    def count(self, args: dict, ctx: CallContext) -> dict:
        """Stream 0..n-1, then a final result."""
        for i in range(args["n"]):
            if ctx.stream:
                ctx.stream(i)
        return {"done": args["n"]}

    @action(Schema({"chunks": Field(int, min=0, max=100, default=0)}), stream=True)
    def parked(self, args: dict, ctx: CallContext) -> Future:
        """Answer later, when `release` is called: a thread of its own streams the chunks and completes it."""
        future: Future = Future()
        with self._parked_lock:
            self._parked.append((future, ctx.stream, args["chunks"]))
        return future

    @action(Schema({"fail": Field(bool, default=False)}))
    def release(self, args: dict, ctx: CallContext) -> dict:
        """Complete every parked call from a new thread (as a model's thread would); returns how many."""
        with self._parked_lock:
            parked, self._parked = self._parked, []

        def finish() -> None:
            for future, stream, chunks in parked:
                for i in range(chunks):
                    if stream:
                        stream(f"chunk {i}")
                if args["fail"]:
                    future.set_exception(NotFound("released with a failure"))
                else:
                    future.set_result({"released": True})

        threading.Thread(target=finish, name="releaser").start()
        return {"released": len(parked)}

    _parked: ClassVar[list[tuple[Future[dict[str, Any]], Any, int]]] = []
    _parked_lock = threading.Lock()

    def handle_legacy(self, request, port: int) -> dict:
        if not isinstance(request, dict):
            return {"status": "error", "message": "request must be an object"}
        if request.get("action") == "echo":
            return {"status": "success", "text": request.get("text")}
        if request.get("action") == "fail":
            raise RuntimeError("legacy handler bug")
        if request.get("action") == "sleep":
            time.sleep(float(request.get("seconds", 0)))
            return {"status": "success"}
        return super().handle_legacy(request, port)


@dataclass(frozen=True)
class EchoSection:
    max_repeat: int = setting(1, minimum=1)


@dataclass(frozen=True)
class EchoSettings:
    """The echo hub's own sections (the common ones are the bus's)."""

    echo: EchoSection = field(default_factory=EchoSection)


def build(runtime: Runtime) -> Assembly:
    # a rule across the hub's and the common sections, checked while the hub is built
    if runtime.hub_settings.echo.max_repeat > runtime.settings.hub.queue_limit:
        raise ConfigError("must not exceed hub.queue_limit", "echo.max_repeat")
    closed = runtime.data_dir / "closed"     # written when the hub closes what it built (tests read it)
    closed.unlink(missing_ok=True)
    return Assembly(handlers=[EchoAgent()], checks={"always": lambda: (True, "fine")},
                    close=[lambda: closed.write_text("closed")])


SPEC = HubSpec(name="echo_hub", title="EchoHub", version="test",
               ports={"native_port": 7010, "http_port": 7110, "events_port": 7310},
               settings_class=EchoSettings, env_map={"ECHO_MAX_REPEAT": ("echo", "max_repeat")}, build=build)

if __name__ == "__main__":
    sys.exit(run_daemon(SPEC))
