"""A real Redis Sentinel setup for fail-over tests: one master, one replica, one sentinel, on 127.0.0.1.

    with SentinelTrio(tmp_path) as trio:      # redis-server x2 + redis-server --sentinel, free TCP ports
        store = RedisStore(trio.url)          # redis+sentinel://127.0.0.1:PORT/mymaster
        trio.kill_master()                    # SIGKILL; the sentinel promotes the replica
        trio.wait_for_failover()              # the sentinel names the replica as master

The sentinel judges the master down after 1 s (``down-after-milliseconds``) and fails over alone (quorum 1).
Every process is started by this class and stopped by its pid.
"""
from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import redis

from tests.support.postgres import free_port

SERVICE = "mymaster"


class SentinelTrio:
    def __init__(self, base: Path) -> None:
        self.base = base
        ports: set[int] = set()
        while len(ports) < 3:
            ports.add(free_port())
        self.ports = dict(zip(("master", "replica", "sentinel"), sorted(ports), strict=True))
        self.procs: dict[str, subprocess.Popen] = {}

    @property
    def url(self) -> str:
        return f"redis+sentinel://127.0.0.1:{self.ports['sentinel']}/{SERVICE}"

    def __enter__(self) -> SentinelTrio:
        self.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def start(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed")
        master, replica, sentinel = (self.ports[n] for n in ("master", "replica", "sentinel"))
        self._spawn("master", [binary, "--port", str(master)])
        self._spawn("replica", [binary, "--port", str(replica), "--replicaof", "127.0.0.1", str(master)])
        self._wait(lambda: self.client("replica").info("replication").get("master_link_status") == "up")
        conf = self.base / "sentinel" / "sentinel.conf"
        conf.parent.mkdir(parents=True, exist_ok=True)
        conf.write_text(f"port {sentinel}\nbind 127.0.0.1\ndir {conf.parent}\n"
                        f"sentinel monitor {SERVICE} 127.0.0.1 {master} 1\n"
                        f"sentinel down-after-milliseconds {SERVICE} 1000\n"
                        f"sentinel failover-timeout {SERVICE} 5000\n")
        with self._log("sentinel") as log:
            self.procs["sentinel"] = subprocess.Popen([binary, str(conf), "--sentinel"], stdout=log,
                                                      stderr=subprocess.STDOUT, cwd=conf.parent)
        self._wait(lambda: len(self.client("sentinel").sentinel_slaves(SERVICE)) == 1, timeout=60)

    def client(self, name: str) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.ports[name], socket_timeout=2, socket_connect_timeout=2,
                           decode_responses=True)

    def master_port(self) -> int:
        return int(self.client("sentinel").sentinel_get_master_addr_by_name(SERVICE)[1])

    def kill_master(self) -> None:
        proc = self.procs["master"]
        proc.kill()
        proc.wait(10)

    def wait_for_failover(self, timeout: float = 30.0) -> None:
        self._wait(lambda: self.master_port() == self.ports["replica"] and
                   self.client("replica").info("replication").get("role") == "master", timeout=timeout)

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(5)

    def _spawn(self, name: str, command: list[str]) -> None:
        data = self.base / name
        data.mkdir(parents=True, exist_ok=True)
        with self._log(name) as log:
            self.procs[name] = subprocess.Popen(
                [*command, "--bind", "127.0.0.1", "--dir", str(data), "--save", "", "--appendonly", "no"],
                stdout=log, stderr=subprocess.STDOUT)
        self._wait(lambda: self.client(name).ping())

    def _log(self, name: str) -> Any:
        return open(self.base / f"{name}.log", "ab")        # the child keeps its copy; read on failure

    def log_tails(self) -> str:
        return "\n".join(f"--- {name}\n" + "\n".join((self.base / f"{name}.log").read_text(errors="replace")
                                                     .splitlines()[-15:])
                         for name in self.procs if (self.base / f"{name}.log").exists())

    def _wait(self, predicate: Any, timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                if predicate():
                    return
            except (redis.exceptions.RedisError, OSError, IndexError):
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"redis sentinel setup did not get ready in time\n{self.log_tails()}")
            time.sleep(0.1)
