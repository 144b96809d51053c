"""Per-device lock file and shared device state, so several processes on one machine see each other.

``<data_dir>/locks/device-<device>.lock`` is held with ``fcntl.flock`` (exclusive) during every load,
unload and hot swap on that device; while held it contains a JSON line naming the holder (pid,
operation, model, since). ``device-<device>.json`` is the shared state: per live process, the models it
has loaded (id, version, reserved MB) and its aliases; it is rewritten atomically (rename) under the
lock, and entries of dead processes are dropped. The budget counts other processes' reservations.
"""
from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import threading
import time
from pathlib import Path
from typing import Any
from collections.abc import Iterator

from bus.errors import Busy


class DeviceLock:
    def __init__(self, data_dir: str | Path, device: str, timeout_s: float = 120.0):
        self.device = device
        directory = Path(data_dir) / "locks"
        directory.mkdir(parents=True, exist_ok=True)
        safe = re.sub(r"[^A-Za-z0-9_-]+", "-", device)
        self.lock_path = directory / f"device-{safe}.lock"
        self.state_path = directory / f"device-{safe}.json"
        self.timeout_s = timeout_s
        self._mutex = threading.RLock()
        self._fd: int | None = None
        self._depth = 0

    @contextlib.contextmanager
    def hold(self, operation: str, **info: Any) -> Iterator[None]:
        """Hold the device exclusively (re-entrant within this process)."""
        if not self._mutex.acquire(timeout=self.timeout_s):
            raise Busy(f"device {self.device} is busy with another load/unload in this process", retry_after_ms=1000)
        try:
            if self._depth == 0:
                self._acquire_file(operation, info)
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
                if self._depth == 0:
                    self._release_file()
        finally:
            self._mutex.release()

    def _acquire_file(self, operation: str, info: dict[str, Any]) -> None:
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        deadline = time.monotonic() + self.timeout_s
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    os.close(fd)
                    holder = self.holder() or {}
                    raise Busy(f"device {self.device} is locked by pid {holder.get('pid')} "
                               f"({holder.get('operation')} of {holder.get('model')})", retry_after_ms=1000) from None
                time.sleep(0.05)
        self._fd = fd
        record = {"pid": os.getpid(), "operation": operation, "since": time.time(), **info}
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(record, default=str) + "\n").encode(), 0)

    def _release_file(self) -> None:
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    # -- observation (any process) --------------------------------------------------------------
    def is_locked(self) -> bool:
        """True while some process (this one included) holds the device lock."""
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        finally:
            os.close(fd)
        return False

    def holder(self) -> dict[str, Any] | None:
        try:
            text = self.lock_path.read_text().strip()
        except OSError:
            return None
        try:
            return json.loads(text) if text else None
        except ValueError:
            return None

    def read_state(self) -> dict[str, Any]:
        try:
            state = json.loads(self.state_path.read_text())
        except (OSError, ValueError):
            state = {}
        processes = {pid: entry for pid, entry in (state.get("processes") or {}).items() if _alive(int(pid))}
        return {"device": self.device, "updated": state.get("updated"), "processes": processes}

    def others_reserved_mb(self) -> float:
        own = str(os.getpid())
        total = 0.0
        for pid, entry in self.read_state()["processes"].items():
            if pid != own:
                total += sum(float(m.get("reserved_mb") or 0) for m in (entry.get("models") or {}).values())
        return total

    def publish(self, models: dict[str, dict[str, Any]], aliases: dict[str, str]) -> None:
        """Record this process's loaded models on the device (call while holding the lock)."""
        state = self.read_state()
        processes = state["processes"]
        own = str(os.getpid())
        if models or aliases:
            processes[own] = {"models": models, "aliases": aliases, "updated": time.time()}
        else:
            processes.pop(own, None)
        payload = {"device": self.device, "updated": time.time(), "processes": processes}
        tmp = self.state_path.with_name(f"{self.state_path.name}.{own}.tmp")
        tmp.write_text(json.dumps(payload, default=str))
        os.replace(tmp, self.state_path)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
