"""Start a hub as users do (``python -m agents.<hub>``) on shifted ports, and talk to it.

    with HubProcess("memory_hub", tmp_path) as hub:
        hub.client().call("hub", "ping")
        hub.legacy_request(7102, {"action": "health_check"})

Ports are the production ports shifted by a ``PORT_OFFSET`` chosen so that every port the hub binds is
free. The process gets SIGTERM on exit (SIGKILL via ``kill9()`` for crash tests).
"""
from __future__ import annotations

import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml
import zmq

from bus.client import HubClient
from bus.tokens import TokenService, read_secret, secret_path

REPO = Path(__file__).resolve().parents[2]
HUB_PORTS = {
    "memory_hub": {"native": 7010, "http": 7110, "events": 7310},
    "echo_hub": {"native": 7010, "http": 7110, "events": 7310},
    "model_manager_suite": {"native": 7011, "http": 7211, "events": 7311},
}
# every port either hub may bind, before the offset
ALL_PORTS = sorted({7010, 7110, 7310, 7011, 7111, 7211, 7311, 5713, 6713, 5574, 6583, 6574, 5715, 6715, 7140,
                    7141, 8140, 7105, 7106, 8105, 8111, 7112, 8112, 7102, 8102, 7119, 8119, 7118, 8118,
                    7116, 8116, 7122, 8122, 5626, 5627, 5575, 5576, 6575, 5570, 5571, 6570, 5617, 5618, 6617,
                    7220, 7221})


def free_offset(ports: list[int] = ALL_PORTS, attempts: int = 200) -> int:
    """An offset under which every port is free on 127.0.0.1 (and below the ephemeral range)."""
    for _ in range(attempts):
        offset = random.randrange(10000, 24000, 7)
        if all(_port_free(p + offset) for p in ports):
            return offset
    raise RuntimeError("no free port offset found")


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


class HubProcess:
    def __init__(self, hub: str, data_dir: Path, *, offset: int | None = None, config: dict | None = None,
                 env: dict[str, str] | None = None, startup_timeout: float = 90.0, module: str | None = None,
                 wait_search: bool = True):
        self.hub = hub
        self.module = module or f"agents.{hub}"
        self.data_dir = Path(data_dir)
        self.offset = free_offset() if offset is None else offset
        self.config = config or {}
        self.extra_env = env or {}
        self.startup_timeout = startup_timeout
        self.wait_search = wait_search        # False: start() returns as soon as the hub answers a ping
        self.proc: subprocess.Popen | None = None
        self.log_path = self.data_dir / f"{hub}.log"
        self._context = zmq.Context.instance()

    # -- lifecycle -----------------------------------------------------------------------------------
    def __enter__(self) -> HubProcess:
        self.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def start(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        # the machine's real neighbour ports (ErrorBus 7150/9002, SystemDigitalTwin 7120...) are not ours
        config = {"hub": {"http_port": HUB_PORTS[self.hub]["http"]},
                  "neighbours": {"error_bus": {"enabled": False}, "registration": {"enabled": False}}}
        _deep_update(config, self.config)
        config_path = self.data_dir / f"{self.hub}.test.yaml"
        config_path.write_text(yaml.safe_dump(config))
        env = {k: v for k, v in os.environ.items() if k not in ("NOTIFY_SOCKET", "WATCHDOG_USEC")}
        env.update({"PORT_OFFSET": str(self.offset), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
                    "PYTHONUNBUFFERED": "1"})
        env.update(self.extra_env)
        with open(self.log_path, "ab") as log:      # the child keeps its own copy of the descriptor
            self.proc = subprocess.Popen(
                [sys.executable, "-m", self.module, "--config", str(config_path), "--data-dir",
                 str(self.data_dir)], cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
        self.wait_ready()

    def wait_ready(self) -> None:
        until = time.monotonic() + self.startup_timeout
        while time.monotonic() < until:
            if self.proc and self.proc.poll() is not None:
                raise RuntimeError(f"{self.hub} exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                with HubClient(self.endpoint, timeout=0.5) as client:
                    client.call("hub", "ping")
                    if not self.wait_search or self._search_ready(client):
                        return
            except Exception:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"{self.hub} was not ready within {self.startup_timeout}s:\n{self.log_tail()}")

    @staticmethod
    def _search_ready(client: HubClient) -> bool:
        """MemoryHub loads its embedding model in the background: tests start once it is loaded."""
        checks = client.call("hub", "health", timeout=5.0)["checks"]
        return checks.get("search", {"ok": True})["ok"]

    def stop(self, timeout: float = 20.0) -> int | None:
        if not self.proc or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait(5)

    def kill9(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    # -- addresses -----------------------------------------------------------------------------------
    def port(self, legacy_port: int) -> int:
        return legacy_port + self.offset

    @property
    def endpoint(self) -> str:
        return f"tcp://127.0.0.1:{HUB_PORTS[self.hub]['native'] + self.offset}"

    @property
    def http_url(self) -> str:
        port = self.config.get("hub", {}).get("http_port", HUB_PORTS[self.hub]["http"])
        return f"http://127.0.0.1:{port + self.offset}"

    @property
    def events_endpoint(self) -> str:
        return f"tcp://127.0.0.1:{HUB_PORTS[self.hub]['events'] + self.offset}"

    # -- clients -------------------------------------------------------------------------------------
    def token(self, scopes: tuple[str, ...] = ("*",), subject: str = "test-admin", ttl_s: int = 3600) -> str:
        secret = self.config.get("auth", {}).get("secret") or read_secret(secret_path(self.data_dir))
        return TokenService(secret).mint(subject, scopes=scopes, ttl_s=ttl_s)[0]

    def client(self, *, token: str | None = "admin", encoding: str = "msgpack", timeout: float = 30.0) -> HubClient:
        real_token = self.token() if token == "admin" else token
        return HubClient(self.endpoint, token=real_token, timeout=timeout, encoding=encoding)

    def legacy_request(self, legacy_port: int, request: Any, timeout: float = 30.0, raw: bytes | None = None) -> Any:
        """One request exactly as a legacy agent sent it: REQ socket, send_json, recv_json."""
        sock = self._context.socket(zmq.REQ)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.RCVTIMEO, int(timeout * 1000))
        sock.setsockopt(zmq.SNDTIMEO, int(timeout * 1000))
        sock.connect(f"tcp://127.0.0.1:{self.port(legacy_port)}")
        try:
            if raw is not None:
                sock.send(raw)
            else:
                sock.send_json(request)
            return json.loads(sock.recv().decode("utf-8"))
        finally:
            sock.close()


def _deep_update(base: dict, new: dict) -> None:
    for key, value in new.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            _deep_update(base[key], value)
        else:
            base[key] = value
