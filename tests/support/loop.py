"""Drive a handler's ``watched()`` sources as the hub's router loop does, for in-process tests of actions
that return a future completed by such a source (``tick`` every pass, ``ready`` when readable)."""
from __future__ import annotations

import select
import time
from concurrent.futures import Future
from typing import Any
from collections.abc import Iterable

from bus.deferred import Deferred


def settle(result: Any, sources: Iterable[Any], timeout: float = 10.0) -> Any:
    """``result`` itself, or the outcome of a future once the sources (or another thread) complete it."""
    if not isinstance(result, (Future, Deferred)):
        return result
    sources = list(sources)
    until = time.monotonic() + timeout
    while not result.done() and time.monotonic() < until:
        fds = {}
        for source in sources:
            source.tick()
            fd = source.fileno()
            if fd is not None:
                fds[fd] = source
        readable = select.select(list(fds), [], [], 0.01)[0] if fds else time.sleep(0.001) or []
        for fd in readable:
            fds[fd].ready()
    return result.result(0)


def one_pass(source: Any, wait_s: float = 0.05) -> None:
    """One pass of the router loop with nothing asked of ``source``: it writes what it buffered (``tick``),
    then reads what arrived within ``wait_s`` (``ready``), e.g. the pushes Redis sent."""
    source.tick()
    fd = source.fileno()
    if fd is None:
        time.sleep(min(wait_s, 0.005))
    elif select.select([fd], [], [], wait_s)[0]:
        source.ready()
