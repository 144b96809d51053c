"""Helpers of the fault tests: metrics scraping, patient legacy clients, an external SQLite write lock, mounts.

* ``metric(hub, name, **labels)``: one sample of the hub's ``GET /metrics`` (0.0 when absent).
* ``wait_for(predicate, timeout)``: the predicate's first truthy value, or the last value at the deadline.
* ``LegacyReq``: a REQ client of one legacy port that survives timeouts (a REQ socket that missed its reply is
  unusable, so it is rebuilt) and reports ``None`` for "no reply".
* ``SqlWriteLock(db_path)``: holds SQLite's write lock from another process's point of view (``BEGIN
  IMMEDIATE`` on a separate connection), so every SQL write of the hub waits: the deterministic way to make a
  real hub action slow.
* ``integrity_check(db_path)``: ``PRAGMA integrity_check`` of a database file ("ok" when sound).
* ``count_rows(db_path | url, table, ids, column)``: how many of ``ids`` are stored (SQLite file or any URL).
* ``mount_tmpfs`` / ``bind_readonly`` / ``unmount``: root-only file system faults; they raise ``MountRefused``
  with the reason when this machine does not allow them (tests skip on it).
"""
from __future__ import annotations

import json
import re
import sqlite3
import subprocess
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any
from collections.abc import Callable

import zmq
from sqlalchemy import bindparam, create_engine, text
from sqlalchemy.pool import NullPool

from tests.support.hubproc import HubProcess

DB_NAME = "memory_hub.db"


def metric(hub: HubProcess, name: str, **labels: str) -> float:
    """The value of one sample of the hub's Prometheus page (labels must match exactly the ones given)."""
    with urllib.request.urlopen(f"{hub.http_url}/metrics", timeout=10) as response:
        text = response.read().decode()
    total, found = 0.0, False
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        match = re.match(r"^([a-zA-Z_:][\w:]*)(\{(.*)\})?\s+(\S+)$", line)
        if not match or match.group(1) != name:
            continue
        sample = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', match.group(3) or ""))
        if all(sample.get(k) == v for k, v in labels.items()):
            total += float(match.group(4))
            found = True
    return total if found else 0.0


def wait_for(predicate: Callable[[], Any], timeout: float = 20.0, interval: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval)


class LegacyReq:
    """One legacy REQ client (send_json / recv), rebuilt after a missed reply."""

    def __init__(self, hub: HubProcess, legacy_port: int, timeout: float = 10.0):
        self.endpoint = f"tcp://127.0.0.1:{hub.port(legacy_port)}"
        self.timeout_ms = int(timeout * 1000)
        self._context = zmq.Context.instance()
        self._sock: zmq.Socket | None = None

    def _socket(self) -> zmq.Socket:
        if self._sock is None:
            sock = self._context.socket(zmq.REQ)
            sock.setsockopt(zmq.LINGER, 0)
            sock.setsockopt(zmq.SNDTIMEO, self.timeout_ms)
            sock.connect(self.endpoint)
            self._sock = sock
        return self._sock

    def request(self, payload: dict) -> dict | None:
        sock = self._socket()
        try:
            sock.send(json.dumps(payload).encode())
            if not sock.poll(self.timeout_ms, zmq.POLLIN):
                self.close()
                return None
            return json.loads(sock.recv().decode())
        except zmq.ZMQError:
            self.close()
            return None

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close(linger=0)
            self._sock = None


class SqlWriteLock:
    """``with SqlWriteLock(db):`` -- the hub's SQL writes wait (busy_timeout) until the block ends."""

    def __init__(self, db_path: Path):
        self.db_path = db_path
        self._conn: sqlite3.Connection | None = None
        self._lock = threading.Lock()

    def acquire(self) -> None:
        conn = sqlite3.connect(self.db_path, timeout=30, isolation_level=None, check_same_thread=False)
        conn.execute("BEGIN IMMEDIATE")
        self._conn = conn

    def release(self) -> None:
        with self._lock:
            conn, self._conn = self._conn, None
        if conn is not None:
            conn.execute("ROLLBACK")
            conn.close()

    def __enter__(self) -> SqlWriteLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def integrity_check(db_path: Path) -> str:
    conn = sqlite3.connect(db_path, timeout=30)
    try:
        return "; ".join(row[0] for row in conn.execute("PRAGMA integrity_check").fetchall())
    finally:
        conn.close()


def count_rows(db_path: Path | str, table: str, ids: list[str], column: str) -> int:
    """How many of ``ids`` are rows of ``table`` (read straight from the file or, given a database URL, from
    the database server; not through the hub)."""
    if isinstance(db_path, str):
        return _count_rows_url(db_path, table, ids, column)
    conn = sqlite3.connect(db_path, timeout=30)
    try:
        found = 0
        for start in range(0, len(ids), 500):
            chunk = ids[start:start + 500]
            marks = ",".join("?" * len(chunk))
            found += conn.execute(f"SELECT COUNT(*) FROM {table} WHERE {column} IN ({marks})", chunk).fetchone()[0]
        return found
    finally:
        conn.close()


def _count_rows_url(url: str, table: str, ids: list[str], column: str) -> int:
    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            query = text(f"SELECT COUNT(*) FROM {table} WHERE {column} IN :ids").bindparams(
                bindparam("ids", expanding=True))
            return sum(conn.execute(query, {"ids": ids[i:i + 500]}).scalar_one() for i in range(0, len(ids), 500))
    finally:
        engine.dispose()


class MountRefused(RuntimeError):
    """This machine does not let the test mount (not root, no CAP_SYS_ADMIN, no tmpfs)."""


def _mount(*args: str) -> None:
    try:
        result = subprocess.run(["mount", *args], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise MountRefused(f"mount {' '.join(args)}: {exc}") from exc
    if result.returncode != 0:
        raise MountRefused(f"mount {' '.join(args)}: {result.stderr.strip() or result.returncode}")


def mount_tmpfs(directory: Path, size: str) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    _mount("-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(directory))


def bind_readonly(path: Path) -> None:
    """A read-only bind of ``path`` onto itself: opening it for writing fails with EROFS, root or not."""
    _mount("--bind", str(path), str(path))
    try:
        _mount("-o", "remount,ro,bind", str(path))
    except MountRefused:
        unmount(path)
        raise


def unmount(path: Path) -> None:
    subprocess.run(["umount", str(path)], capture_output=True, timeout=30)
