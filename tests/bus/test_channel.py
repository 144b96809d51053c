"""ReplyChannel: items put by many threads all reach the one draining thread, each announced by a wake-up
on the descriptor it polls (no item is ever left waiting without one)."""
from __future__ import annotations

import select
import sys
import threading

from bus.channel import ReplyChannel


def test_every_item_from_many_threads_arrives_with_a_wake_up():
    switch = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)            # interleave producers and the drain as finely as possible
    try:
        check_many_producers()
    finally:
        sys.setswitchinterval(switch)


def check_many_producers() -> None:
    channel = ReplyChannel()
    producers, per_thread = 8, 5000

    def produce(p: int) -> None:
        for i in range(per_thread):
            if i % 7 == 0:
                channel.put_many([(p, i)])
            else:
                channel.put((p, i))

    threads = [threading.Thread(target=produce, args=(p,)) for p in range(producers)]
    for thread in threads:
        thread.start()
    received: list[tuple[int, int]] = []
    while len(received) < producers * per_thread:
        readable, _, _ = select.select([channel.fileno()], [], [], 5)
        assert readable, f"no wake-up with {producers * per_thread - len(received)} items still missing"
        received.extend(channel.drain())
    for thread in threads:
        thread.join()
    for p in range(producers):
        assert [i for q, i in received if q == p] == list(range(per_thread))    # in order per producer
    channel.close()


class _RecvHook:
    """Wraps the channel's wake-up socket: runs ``hook`` once, at the start of the drain's ``recv``."""

    def __init__(self, sock, hook):
        self.sock, self.hook = sock, hook

    def recv(self, size: int) -> bytes:
        hook, self.hook = self.hook, None
        if hook is not None:
            hook()
        return self.sock.recv(size)

    def __getattr__(self, name):
        return getattr(self.sock, name)


def test_a_put_racing_the_drain_never_silences_later_wake_ups():
    channel = ReplyChannel()
    channel.put("a")
    assert select.select([channel.fileno()], [], [], 5)[0]
    raced = threading.Thread(target=channel.put, args=("b",))
    channel._wake_r = _RecvHook(channel._wake_r, lambda: (raced.start(), raced.join()))
    first = channel.drain()
    channel.put("c")
    assert select.select([channel.fileno()], [], [], 5)[0], "the put after the race woke nobody"
    assert first + channel.drain() == ["a", "b", "c"]
    channel.close()
