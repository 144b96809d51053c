"""A background task that runs a function every N seconds on a daemon thread until stopped.

A failing run is logged and the next one retries: one bad pass never ends the task. ``when`` (optional)
is asked before each run and the run is skipped unless it says yes (e.g. "this replica is the leader").
"""
from __future__ import annotations

import threading
from collections.abc import Callable

from bus.log import get_logger

log = get_logger("bus.periodic")


class PeriodicTask:
    def __init__(self, name: str, interval_s: float, run: Callable[[], object],
                 when: Callable[[], bool] | None = None):
        self.name = name
        self.interval_s = float(interval_s)
        self._run = run
        self._when = when
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name=self.name, daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                if self._when is None or self._when():
                    self._run()
            except Exception as exc:  # keep the task alive; the next pass retries
                log.error("periodic_task_failed", task=self.name, error=repr(exc), exc_info=True)
