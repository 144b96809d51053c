"""A background task that runs a function every N seconds on a daemon thread until stopped.

A failing run is logged and the next one retries: one bad pass never ends the task. ``when`` (optional)
is asked before each run and the run is skipped unless it says yes (e.g. "this replica is the leader").

Beyond a fixed period: ``wake()`` (or setting the ``wake`` event given to the constructor, which several
tasks may share) runs the next pass early, after ``settle_s`` so that a burst of wake-ups makes one pass;
with ``run_sets_delay`` the run returns the seconds until the next pass instead of ``interval_s`` (0 to run
again at once, e.g. while a queue has work; more to back off; None for the interval).
"""
from __future__ import annotations

import threading
from collections.abc import Callable

from bus.log import get_logger

log = get_logger("bus.periodic")


class PeriodicTask:
    def __init__(self, name: str, interval_s: float, run: Callable[[], object],
                 when: Callable[[], bool] | None = None, *, settle_s: float = 0.0,
                 wake: threading.Event | None = None, run_sets_delay: bool = False):
        self.name = name
        self.interval_s = float(interval_s)
        self.settle_s = float(settle_s)
        self._run = run
        self._run_sets_delay = run_sets_delay
        self._when = when
        self._stop = threading.Event()
        self._wake = wake if wake is not None else threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name=self.name, daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():     # a run still going: say so, and keep reporting it alive
                log.warning("periodic_task_stop_timeout", task=self.name, timeout_s=timeout)
                return
            self._thread = None

    def wake(self) -> None:
        """Run the next pass now (after ``settle_s``) instead of at the end of the current delay."""
        self._wake.set()

    @property
    def stopping(self) -> bool:
        """True once ``stop`` was called: a long run may check it to end early."""
        return self._stop.is_set()

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _loop(self) -> None:
        delay = self.interval_s
        while not self._stop.is_set():
            woken = self._wake.wait(delay)
            if woken:
                self._wake.clear()
            # after the clear: a stop() that set the wake event just before it has already set _stop
            if self._stop.is_set():
                return
            if woken and self.settle_s > 0 and self._stop.wait(self.settle_s):
                return
            delay = self._pass()

    def _pass(self) -> float:
        try:
            if self._when is None or self._when():
                result = self._run()
                if self._run_sets_delay and isinstance(result, (int, float)):
                    return max(0.0, float(result))
        except Exception as exc:  # keep the task alive; the next pass retries
            log.error("periodic_task_failed", task=self.name, error=repr(exc), exc_info=True)
        return self.interval_s
