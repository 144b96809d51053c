"""A LAN of network namespaces for the two-host test: one bridge, hosts with fixed addresses.

    lan = Lan(f"t{os.getpid()}", {"pc2": "192.168.100.17", "mainpc": "192.168.100.16"})
    lan.create()                      # raises NamespaceUnavailable when namespaces cannot be made
    proc = lan.spawn("pc2", [sys.executable, "-m", "agents.memory_hub", ...], log_path)
    lan.run("mainpc", [sys.executable, "-m", "tests.deploy.peers", "http", url], timeout=15)
    lan.destroy()                     # every process started here (by pid), then the namespaces

Nothing is added to the root namespace: the bridge lives in a namespace of its own (``<tag>-lan``), each host
namespace gets one end of a veth pair as ``eth0`` (the other end is a port of the bridge), a /24 address and
no default route. Names carry a per-run tag (the test's pid) so parallel runs do not collide.
"""
from __future__ import annotations

import json
import contextlib
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

IP = "ip"
PREFIX = 24


class NamespaceUnavailable(RuntimeError):
    """Network namespaces cannot be made here (not root, no iproute2, no kernel support)."""


class Lan:
    def __init__(self, tag: str, hosts: dict[str, str]):
        self.tag = tag
        self.hosts = dict(hosts)
        self.switch = f"{tag}-lan"
        self.created: list[str] = []
        self.procs: list[subprocess.Popen] = []

    def ns(self, host: str) -> str:
        return f"{self.tag}-{host}"

    # -- topology ------------------------------------------------------------------------------------
    def create(self) -> None:
        if os.geteuid() != 0:
            raise NamespaceUnavailable("network namespaces need root (ip netns add)")
        try:
            self._add_ns(self.switch)
        except (OSError, subprocess.CalledProcessError) as exc:
            raise NamespaceUnavailable(f"ip netns add failed: {exc}") from exc
        try:
            self._ip(self.switch, "link", "add", "br0", "type", "bridge")
            self._ip(self.switch, "link", "set", "br0", "up")
            for index, (host, address) in enumerate(self.hosts.items()):
                ns, port = self.ns(host), f"port{index}"
                self._add_ns(ns)
                self._ip(self.switch, "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", ns)
                self._ip(self.switch, "link", "set", port, "master", "br0")
                self._ip(self.switch, "link", "set", port, "up")
                self._ip(ns, "addr", "add", f"{address}/{PREFIX}", "dev", "eth0")
                self._ip(ns, "link", "set", "lo", "up")
                self._ip(ns, "link", "set", "eth0", "up")
        except subprocess.CalledProcessError as exc:
            self.destroy()
            raise NamespaceUnavailable(f"could not build the LAN: {exc.stderr or exc}") from exc

    def link(self, host: str, up: bool) -> None:
        """The host's cable: ``ip link set eth0 down|up`` inside its namespace."""
        self._ip(self.ns(host), "link", "set", "eth0", "up" if up else "down")

    def routes(self, host: str) -> str:
        return subprocess.run([IP, "-n", self.ns(host), "route", "show"], capture_output=True, text=True,
                              check=True, timeout=10).stdout

    # -- processes -----------------------------------------------------------------------------------
    def spawn(self, host: str, argv: list[str], log_path: Path, env: dict[str, str] | None = None,
              cwd: Path | None = None) -> subprocess.Popen:
        """A long-running process inside ``host`` (``ip netns exec`` execs it: the pid is the program's)."""
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(log_path, "ab") as log:
            proc = subprocess.Popen([IP, "netns", "exec", self.ns(host), *argv], stdout=log,
                                    stderr=subprocess.STDOUT, env=env, cwd=cwd)
        self.procs.append(proc)
        return proc

    def run(self, host: str, argv: list[str], timeout: float, env: dict[str, str] | None = None) -> Any:
        """A one-shot program inside ``host`` printing one JSON line; its parsed output."""
        done = subprocess.run([IP, "netns", "exec", self.ns(host), *argv], capture_output=True, text=True,
                              timeout=timeout, env=env)
        if done.returncode != 0:
            raise RuntimeError(f"{argv} in {host} exited {done.returncode}: {done.stderr[-2000:]}")
        return json.loads(done.stdout.strip().splitlines()[-1])

    @staticmethod
    def stop(proc: subprocess.Popen, timeout: float = 30.0) -> int:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        return proc.returncode

    def destroy(self) -> None:
        for proc in reversed(self.procs):
            self.stop(proc)
        for ns in reversed(self.created):
            self._kill_leftovers(ns)
            subprocess.run([IP, "netns", "del", ns], capture_output=True, timeout=30)
        self.created.clear()

    # -- helpers ---------------------------------------------------------------------------------------
    def _add_ns(self, ns: str) -> None:
        subprocess.run([IP, "netns", "add", ns], check=True, capture_output=True, text=True, timeout=30)
        self.created.append(ns)

    @staticmethod
    def _ip(ns: str, *args: str) -> None:
        subprocess.run([IP, "-n", ns, *args], check=True, capture_output=True, text=True, timeout=30)

    @staticmethod
    def _kill_leftovers(ns: str) -> None:
        """Children our processes left inside our namespace (e.g. a hub's own redis-server), by pid."""
        listed = subprocess.run([IP, "netns", "pids", ns], capture_output=True, text=True, timeout=10).stdout
        pids = [int(p) for p in listed.split() if p.isdigit()]
        for sig in (signal.SIGTERM, signal.SIGKILL):
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, sig)
            if sig == signal.SIGTERM and pids:
                time.sleep(1.0)


def wait_for_line(path: Path, needle: str, timeout: float, proc: subprocess.Popen | None = None,
                  count: int = 1) -> None:
    """Until ``path`` holds ``needle`` at least ``count`` times (a log line), or fail with the log's tail."""
    until = time.monotonic() + timeout
    while time.monotonic() < until:
        text = path.read_text(errors="replace") if path.exists() else ""
        if text.count(needle) >= count:
            return
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"{path.name}: process exited {proc.returncode}:\n{text[-3000:]}")
        time.sleep(0.2)
    tail = path.read_text(errors="replace")[-3000:] if path.exists() else "(no log)"
    raise AssertionError(f"{path.name}: no {needle!r} within {timeout}s:\n{tail}")
