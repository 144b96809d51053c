"""Bounded worker pool for blocking handler calls.

A job is a callable returning one item for the router's ``ReplyChannel`` (or None to send nothing); the
worker puts it there, so replies travel back to the one thread that may write to the ROUTER sockets.
``submit`` hands over a *batch* of jobs in one queue operation: the worker runs them in order and returns
their items in one ``put_many`` (one wake-up of the router for the whole batch). The router batches only
jobs it measured as quick; a slow job always travels alone. ``submit`` accepts at most ``limit`` pending
jobs in all and returns how many of the batch it took (the router answers ``busy`` to the rest).
"""
from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Sequence
from typing import Any

from bus.channel import ReplyChannel
from bus.log import get_logger

log = get_logger("bus.workers")

Job = Callable[[], Any]


class WorkerPool:
    def __init__(self, channel: ReplyChannel, threads: int, limit: int):
        self._channel = channel
        self._jobs: queue.SimpleQueue[Sequence[Job] | None] = queue.SimpleQueue()
        self._limit = limit
        self._pending = 0
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._work, name=f"worker-{i}", daemon=True)
                         for i in range(threads)]

    @property
    def pending(self) -> int:
        return self._pending

    @property
    def size(self) -> int:
        return len(self._threads)

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def submit(self, jobs: Sequence[Job]) -> int:
        """Queue the first jobs of ``jobs`` that fit under the limit, as one batch; returns how many."""
        with self._lock:
            taken = max(0, min(len(jobs), self._limit - self._pending))
            self._pending += taken
        if taken:
            self._jobs.put(jobs[:taken] if taken < len(jobs) else jobs)
        return taken

    def stop(self, timeout: float = 5.0) -> None:
        for _ in self._threads:
            self._jobs.put(None)
        for thread in self._threads:
            thread.join(timeout)

    def _work(self) -> None:
        while True:
            batch = self._jobs.get()
            if batch is None:
                return
            items: list[Any] = []
            for job in batch:
                try:
                    item = job()
                except Exception as exc:  # jobs map their own errors; this is a last resort
                    log.error("worker_job_crashed", error=repr(exc))
                    item = None
                finally:
                    with self._lock:
                        self._pending -= 1
                if item is not None:
                    items.append(item)
            if items:
                self._channel.put_many(items)
