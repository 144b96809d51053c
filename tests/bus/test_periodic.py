"""PeriodicTask runs its function repeatedly, survives a failing pass, and stops."""
from __future__ import annotations

import threading
import time

from bus.periodic import PeriodicTask


def test_runs_repeatedly_survives_failures_and_stops():
    calls: list[float] = []
    third = threading.Event()

    def run() -> None:
        calls.append(time.monotonic())
        if len(calls) == 1:
            raise RuntimeError("first pass fails")
        if len(calls) >= 3:
            third.set()

    task = PeriodicTask("test-task", 0.01, run)
    task.start()
    task.start()                       # a second start is a no-op
    assert third.wait(5)
    assert task.alive
    task.stop()
    assert not task.alive
    count = len(calls)
    time.sleep(0.05)
    assert len(calls) == count


def test_runs_only_while_its_condition_holds():
    allowed = threading.Event()
    asked = threading.Event()
    calls: list[float] = []

    def when() -> bool:
        asked.set()
        return allowed.is_set()

    task = PeriodicTask("test-conditional", 0.01, lambda: calls.append(time.monotonic()), when=when)
    task.start()
    try:
        assert asked.wait(5)
        time.sleep(0.05)
        assert calls == []                 # asked, not allowed: never ran
        allowed.set()
        deadline = time.monotonic() + 5
        while not calls and time.monotonic() < deadline:
            time.sleep(0.01)
        assert calls
    finally:
        task.stop()
