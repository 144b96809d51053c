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
