"""sd_notify without a dependency: READY=1, STOPPING=1, WATCHDOG=1 to $NOTIFY_SOCKET when set."""
from __future__ import annotations

import os
import socket
import threading
from collections.abc import Callable


class SystemdNotifier:
    def __init__(self, env: dict[str, str]):
        self._address = env.get("NOTIFY_SOCKET") or None
        usec = env.get("WATCHDOG_USEC")
        self.watchdog_interval = int(usec) / 2e6 if usec and usec.isdigit() else None
        self._stop = threading.Event()

    @property
    def enabled(self) -> bool:
        return self._address is not None

    def notify(self, message: str) -> bool:
        if not self._address:
            return False
        address = self._address
        if address.startswith("@"):
            address = "\0" + address[1:]
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
                sock.connect(address)
                sock.sendall(message.encode())
            return True
        except OSError:
            return False

    def start_watchdog(self, is_alive: Callable[[], bool]) -> None:
        """Ping WATCHDOG=1 at half the configured interval while ``is_alive()`` holds."""
        if not self.enabled or not self.watchdog_interval:
            return

        def loop() -> None:
            while not self._stop.wait(self.watchdog_interval):
                if is_alive():
                    self.notify("WATCHDOG=1")

        threading.Thread(target=loop, name="sd-watchdog", daemon=True).start()

    def stop(self) -> None:
        self._stop.set()


def notify_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k in ("NOTIFY_SOCKET", "WATCHDOG_USEC")}
