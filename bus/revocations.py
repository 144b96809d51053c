"""Revoked token ids for hubs without a user store of their own (ModelManagerSuite), answered from memory.

``Revocations`` holds ``jti -> exp`` in process (the router thread asks it on every verification, so it
never does I/O there), persisted to an append-only 0600 file under the data dir so a restart keeps them.
``RevocationFeed`` subscribes to other hubs' events ports for ``auth.revoked`` events (MemoryHub publishes
one per logout, and republishes every live revocation periodically so a subscriber that was away catches
up) and adds what it hears: a token logged out on MemoryHub is refused here as soon as the event arrives.
"""
from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path
from collections.abc import Callable, Iterable
from typing import Any

import msgpack
import zmq

from bus.log import get_logger

log = get_logger("bus.revocations")

REVOKED_TOPIC = "auth.revoked"
FILE_NAME = "revoked_tokens.jsonl"


class Revocations:
    def __init__(self, path: Path | None = None, leeway_s: float = 5.0):
        self.path = path
        self.leeway_s = leeway_s
        self._known: dict[str, float] = {}
        self._lock = threading.Lock()
        if path is not None and path.exists():
            self._load(path)

    def __contains__(self, jti: object) -> bool:
        with self._lock:
            return jti in self._known

    def is_revoked(self, jti: str) -> bool:
        return jti in self

    def add(self, jti: str, exp: float) -> bool:
        """Remember ``jti`` until ``exp``; True when it was new (and so written to the file)."""
        if not jti:
            return False
        now = time.time()
        with self._lock:
            if jti in self._known or float(exp) + self.leeway_s < now:
                return False
            self._known[jti] = float(exp)
            self._prune(now)
            if self.path is not None:
                self._append(self.path, jti, float(exp))
        return True

    def live(self) -> list[tuple[str, float]]:
        with self._lock:
            self._prune(time.time())
            return list(self._known.items())

    def _append(self, path: Path, jti: str, exp: float) -> None:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            os.write(fd, (json.dumps({"jti": jti, "exp": exp}) + "\n").encode())
        finally:
            os.close(fd)

    def _load(self, path: Path) -> None:
        now = time.time()
        for line in path.read_text(errors="replace").splitlines():
            try:
                entry = json.loads(line)
                if float(entry["exp"]) + self.leeway_s >= now:
                    self._known[str(entry["jti"])] = float(entry["exp"])
            except (ValueError, KeyError, TypeError):
                continue
        self._rewrite(path)

    def _rewrite(self, path: Path) -> None:
        """Compact the file to the live entries (at start only)."""
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, "".join(json.dumps({"jti": j, "exp": e}) + "\n" for j, e in self._known.items()).encode())
        finally:
            os.close(fd)
        os.replace(tmp, path)

    def _prune(self, now: float) -> None:
        for jti in [j for j, exp in self._known.items() if exp + self.leeway_s < now]:
            del self._known[jti]


class RevocationFeed:
    """A SUB socket on other hubs' events ports (topic ``auth.revoked``) feeding ``Revocations``."""

    def __init__(self, context: zmq.Context[Any], endpoints: Iterable[str], revocations: Revocations,
                 on_revoked: Callable[[str], None] | None = None, curve_server_key: str | None = None):
        self.context = context
        self.endpoints = list(endpoints)
        self.revocations = revocations
        self.on_revoked = on_revoked
        self.curve_server_key = curve_server_key
        self.heard = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="revocation-feed", daemon=True)

    def start(self) -> None:
        if self.endpoints:
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(2)

    def _run(self) -> None:
        sock = self.context.socket(zmq.SUB)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.MAXMSGSIZE, 1024 * 1024)
        if self.curve_server_key:
            public, secret = zmq.curve_keypair()
            sock.curve_serverkey = self.curve_server_key.encode()
            sock.curve_publickey, sock.curve_secretkey = public, secret
        sock.setsockopt(zmq.SUBSCRIBE, REVOKED_TOPIC.encode())
        for endpoint in self.endpoints:
            sock.connect(endpoint)
        try:
            while not self._stop.is_set():
                if not sock.poll(200):
                    continue
                frames = sock.recv_multipart()
                self._take(frames)
        finally:
            sock.close()

    def _take(self, frames: list[bytes]) -> None:
        if len(frames) != 2 or frames[0] != REVOKED_TOPIC.encode():
            return
        try:
            payload = msgpack.unpackb(frames[1], raw=False)
            entries = payload.get("revoked") or [{"jti": payload["jti"], "exp": payload["exp"]}]
            for entry in entries:
                if self.revocations.add(str(entry["jti"]), float(entry["exp"])):
                    self.heard += 1
                    if self.on_revoked is not None:
                        self.on_revoked(str(entry["jti"]))
        except Exception as exc:  # a malformed event must not end the feed
            log.warning("revocation_event_ignored", error=repr(exc))
