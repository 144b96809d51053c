"""Bounded worker pool for blocking handler calls.

A job is a callable returning one item for the router's ``ReplyChannel``, a list of items, or None to
send nothing; the worker puts them there, so replies travel back to the one thread that may write to the ROUTER sockets.
``submit`` hands over a *batch* of jobs in one queue operation: the worker runs them in order and returns
their items in one ``put_many`` (one wake-up of the router for the whole batch). The router batches only
jobs it measured as quick; a slow job always travels alone. A job may serve several requests (its
``weight``); ``submit`` accepts at most ``limit`` pending requests in all and returns how many jobs of the
batch it took (the router answers ``busy`` to the rest).
"""
from __future__ import annotations

import queue
import threading
from typing import Any, Callable, Sequence

from bus.channel import ReplyChannel
from bus.log import get_logger

log = get_logger("bus.workers")

Job = Callable[[], Any]


class WorkerPool:
    def __init__(self, channel: ReplyChannel, threads: int, limit: int):
        self._channel = channel
        self._jobs: queue.SimpleQueue[tuple[Sequence[Job], Sequence[int]] | None] = queue.SimpleQueue()
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

    def submit(self, jobs: Sequence[Job], weights: Sequence[int] | None = None) -> int:
        """Queue the first jobs of ``jobs`` that fit under the limit, as one batch; returns how many."""
        weights = weights or [1] * len(jobs)
        with self._lock:
            room, taken = self._limit - self._pending, 0
            while taken < len(jobs) and weights[taken] <= room:
                room -= weights[taken]
                taken += 1
            self._pending += sum(weights[:taken])
        if taken:
            self._jobs.put((jobs[:taken], weights[:taken]))
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
            for job, weight in zip(*batch):
                try:
                    item = job()
                except Exception as exc:  # jobs map their own errors; this is a last resort
                    log.error("worker_job_crashed", error=repr(exc))
                    item = None
                finally:
                    with self._lock:
                        self._pending -= weight
                if isinstance(item, list):
                    items.extend(item)
                elif item is not None:
                    items.append(item)
            if items:
                self._channel.put_many(items)
