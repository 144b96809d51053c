"""bus.deferred.Deferred: completed once, from any thread; callbacks and blocking waits see the outcome."""
from __future__ import annotations

import threading
import time

import pytest

from bus.deferred import Deferred
from bus.errors import NotFound


def test_a_callback_added_before_completion_runs_on_the_completing_thread():
    deferred: Deferred[int] = Deferred()
    seen: list[tuple[int, str]] = []
    deferred.add_done_callback(lambda d: seen.append((d.result(0), threading.current_thread().name)))
    assert not deferred.done() and seen == []
    worker = threading.Thread(target=deferred.set_result, args=(7,), name="completer")
    worker.start()
    worker.join()
    assert seen == [(7, "completer")]


def test_a_callback_added_after_completion_runs_at_once():
    deferred: Deferred[str] = Deferred()
    deferred.set_result("x")
    seen: list[str] = []
    deferred.add_done_callback(lambda d: seen.append(d.result()))
    assert seen == ["x"]


def test_only_the_first_completion_counts():
    deferred: Deferred[int] = Deferred()
    deferred.set_exception(NotFound("gone"))
    deferred.set_result(1)
    with pytest.raises(NotFound, match="gone"):
        deferred.result(0)


def test_result_waits_for_another_thread_and_times_out_otherwise():
    deferred: Deferred[None] = Deferred()
    with pytest.raises(TimeoutError):
        deferred.result(0.05)
    threading.Timer(0.1, deferred.set_result, args=(None,)).start()
    started = time.monotonic()
    assert deferred.result(5) is None and deferred.done()
    assert time.monotonic() - started < 4


def test_many_threads_racing_callbacks_and_completion_call_every_callback_once():
    for _ in range(200):
        deferred: Deferred[int] = Deferred()
        calls: list[int] = []
        record = calls.append
        adders = [threading.Thread(target=deferred.add_done_callback, args=(lambda d, r=record: r(d.result()),))
                  for _ in range(4)]
        for thread in adders:
            thread.start()
        deferred.set_result(3)
        for thread in adders:
            thread.join()
        assert calls == [3, 3, 3, 3]
