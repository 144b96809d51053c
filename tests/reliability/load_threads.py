"""Small write-load drivers for fault tests: threads that keep calling a hub and record what was acknowledged.

``Driver(step)`` runs ``step(client_state, i)`` in a loop until ``stop()``; ``step`` returns the reply (or
None when none came). Every reply is appended to ``replies``; ``acked`` collects what the step reports as
acknowledged (``Ack`` values) so the test can check each acknowledged write later.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any
from collections.abc import Callable

import zmq

from bus.client import HubClient
from bus.errors import HubError
from tests.reliability.support import LegacyReq
from tests.support.hubproc import HubProcess


@dataclass
class Driver:
    name: str
    step: Callable[[int], tuple[Any, Any]]       # i -> (reply, acknowledged value or None)
    replies: list = field(default_factory=list)
    acked: list = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> Driver:
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        i = 0
        while not self._stop.is_set():
            reply, ack = self.step(i)
            self.replies.append(reply)
            if ack is not None:
                self.acked.append(ack)
            i += 1

    def stop(self, timeout: float = 30.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()


def legacy_mos_writer(hub: HubProcess, tag: str, timeout: float = 10.0) -> Driver:
    """add_memory on the legacy MOS port 7140; acknowledges the memory_id."""
    client = LegacyReq(hub, 7140, timeout=timeout)

    def step(i: int) -> tuple[Any, Any]:
        reply = client.request({"action": "add_memory", "data": {"content": f"{tag} {i}", "tags": [tag]}})
        ok = isinstance(reply, dict) and reply.get("status") == "success"
        return reply, (reply["memory_id"] if ok else None)

    return Driver(f"legacy-mos-{tag}", step)


def native_mos_writer(hub: HubProcess, tag: str, timeout: float = 10.0) -> Driver:
    """add_memory natively; acknowledges the memory_id."""
    client = hub.client(timeout=timeout)

    def step(i: int) -> tuple[Any, Any]:
        try:
            result = client.call("MemoryOrchestratorService", "add_memory", {"content": f"{tag} {i}"})
        except (HubError, zmq.ZMQError) as exc:
            return exc, None
        return result, result["memory_id"]

    return Driver(f"native-mos-{tag}", step)


def native_kv_writer(hub: HubProcess, tag: str, timeout: float = 10.0) -> Driver:
    """MemoryClient kv_set natively; acknowledges (key, value)."""
    client: HubClient = hub.client(timeout=timeout)

    def step(i: int) -> tuple[Any, Any]:
        key, value = f"{tag}:{i}", {"i": i, "tag": tag}
        try:
            result = client.call("MemoryClient", "kv_set", {"key": key, "value": value})
        except (HubError, zmq.ZMQError) as exc:
            return exc, None
        return result, (key, value)

    return Driver(f"native-kv-{tag}", step)
