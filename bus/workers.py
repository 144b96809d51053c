"""Bounded worker pool for blocking handler calls.

Jobs are callables returning the reply frames for one request. Each worker thread owns a PUSH socket
connected to the router loop's PULL (ZeroMQ sockets are not thread-safe), so replies travel back to the
one thread that may write to the ROUTER sockets. ``submit`` refuses (returns False) when ``limit`` jobs
are already pending; the loop then answers ``busy``.
"""
from __future__ import annotations

import queue
import threading
from typing import Callable

import zmq

from bus.log import get_logger

log = get_logger("bus.workers")

# A job returns the frames to push back ([key, reply, outcome, more-flag]) or None to send nothing.
Job = Callable[["Emitter"], list[bytes] | None]


class Emitter:
    """Lets a running job push an intermediate (streamed) reply before its final one."""

    def __init__(self, sock: zmq.Socket):
        self._sock = sock

    def send(self, frames: list[bytes]) -> None:
        self._sock.send_multipart(frames)


class WorkerPool:
    def __init__(self, context: zmq.Context, result_endpoint: str, threads: int, limit: int):
        self._context = context
        self._endpoint = result_endpoint
        self._jobs: queue.Queue[Job | None] = queue.Queue()
        self._limit = limit
        self._pending = 0
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._work, name=f"worker-{i}", daemon=True)
                         for i in range(threads)]

    @property
    def pending(self) -> int:
        return self._pending

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def submit(self, job: Job) -> bool:
        with self._lock:
            if self._pending >= self._limit:
                return False
            self._pending += 1
        self._jobs.put(job)
        return True

    def stop(self, timeout: float = 5.0) -> None:
        for _ in self._threads:
            self._jobs.put(None)
        for thread in self._threads:
            thread.join(timeout)

    def _work(self) -> None:
        sock = self._context.socket(zmq.PUSH)
        sock.setsockopt(zmq.LINGER, 1000)
        sock.connect(self._endpoint)
        emitter = Emitter(sock)
        try:
            while True:
                job = self._jobs.get()
                if job is None:
                    return
                try:
                    frames = job(emitter)
                except Exception as exc:  # jobs map their own errors; this is a last resort
                    log.error("worker_job_crashed", error=repr(exc))
                    frames = None
                finally:
                    with self._lock:
                        self._pending -= 1
                if frames is not None:
                    sock.send_multipart(frames)
        finally:
            sock.close()
