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


def test_wake_runs_the_next_pass_early_after_settling():
    ran = threading.Event()
    calls: list[float] = []

    def run() -> None:
        calls.append(time.monotonic())
        ran.set()

    task = PeriodicTask("test-wake", 3600.0, run, settle_s=0.05)
    task.start()
    try:
        time.sleep(0.05)
        assert calls == []                 # an hour's interval: nothing yet
        woken_at = time.monotonic()
        for _ in range(5):                 # a burst of wake-ups makes one pass
            task.wake()
        assert ran.wait(5)
        time.sleep(0.1)
        assert len(calls) == 1
        assert calls[0] - woken_at >= 0.05
    finally:
        task.stop()


def test_a_shared_wake_event_wakes_the_task():
    event = threading.Event()
    ran = threading.Event()
    task = PeriodicTask("test-shared-wake", 3600.0, ran.set, wake=event)
    task.start()
    try:
        event.set()
        assert ran.wait(5)
    finally:
        task.stop()


def test_run_sets_the_delay_before_the_next_pass():
    delays = iter([0.0, 0.0, 3600.0])
    calls: list[float] = []
    third = threading.Event()

    def run() -> float:
        calls.append(time.monotonic())
        if len(calls) == 3:
            third.set()
        return next(delays, 3600.0)

    task = PeriodicTask("test-delay", 0.01, run, run_sets_delay=True)
    task.start()
    try:
        assert third.wait(5)               # two passes at once after the first
        time.sleep(0.1)
        assert len(calls) == 3             # then the run asked for an hour
    finally:
        task.stop()


def test_a_number_returned_without_run_sets_delay_is_ignored():
    calls: list[float] = []
    third = threading.Event()

    def run() -> int:
        calls.append(time.monotonic())
        if len(calls) >= 3:
            third.set()
        return 3600                        # e.g. a count of rows cleaned: not a delay

    task = PeriodicTask("test-count", 0.01, run)
    task.start()
    try:
        assert third.wait(5)
    finally:
        task.stop()


class StopLandsBeforeClear(threading.Event):
    """A wake event whose first clear() comes just after stop() set it (the race a stop must survive)."""

    def __init__(self) -> None:
        super().__init__()
        self.task: PeriodicTask | None = None
        self.stopper: threading.Thread | None = None

    def clear(self) -> None:
        if self.stopper is None and self.task is not None:
            self.stopper = threading.Thread(target=self.task.stop, kwargs={"timeout": 10.0})
            self.stopper.start()
            while not (self.task.stopping and self.is_set()):     # stop() has set both flags
                time.sleep(0.001)
        super().clear()


def test_a_stop_that_lands_while_the_task_wakes_ends_it_without_another_pass():
    wake = StopLandsBeforeClear()
    calls: list[float] = []
    task = PeriodicTask("test-stop-race", 3600.0, lambda: calls.append(time.monotonic()), wake=wake)
    wake.task = task
    task.start()
    task.wake()
    assert _wait_for(lambda: wake.stopper is not None)
    wake.stopper.join(20)
    assert not wake.stopper.is_alive()
    assert calls == []                         # no pass after the stop (before: one, then a wait of an hour)


def _wait_for(condition, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.001)
    return condition()


def test_a_stop_that_times_out_reports_the_task_alive_until_its_run_ends():
    release = threading.Event()
    task = PeriodicTask("slow-run", 0.01, lambda: release.wait(5))
    task.start()
    time.sleep(0.1)                       # inside its first run
    task.stop(timeout=0.1)
    assert task.alive                     # the run is still going: not reported as stopped
    release.set()
    deadline = time.monotonic() + 5
    while task.alive and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not task.alive
