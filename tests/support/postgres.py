"""A private PostgreSQL 15 cluster for tests and benchmarks, run as the ``postgres`` user.

    cluster = PostgresCluster.start_new(base_dir)      # initdb + pg_ctl start on a free 127.0.0.1 port
    url = cluster.create_database("t1")                # postgresql+psycopg://postgres@127.0.0.1:PORT/t1
    url = cluster.create_database("t2", template="t1") # a copy of a migrated template (fast)
    cluster.stop()                                     # SIGTERM (smart->fast shutdown) to the pid file's pid

Root cannot run PostgreSQL, so the binaries run under ``runuser -u postgres --`` (as-is when already that
user); the cluster's directory is created under ``/tmp`` and handed to ``postgres``. ``missing_reason()``
says why no cluster can run here (no binaries, no ``postgres`` user), or None.

``TemplateDatabases(cluster)`` hands out fresh MemoryHub databases: the migrations run once, into a
template, and each ``fresh()`` database is a copy of it (~0.1 s) that ``drop()`` removes; ``empty()`` is a
database without any schema.
"""
from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

PG_BIN = Path(os.environ.get("PG_BIN", "/usr/lib/postgresql/15/bin"))
PG_USER = "postgres"


def missing_reason() -> str | None:
    """Why a private cluster cannot run on this machine, or None when it can."""
    for tool in ("initdb", "pg_ctl", "postgres"):
        if not (PG_BIN / tool).exists():
            return f"PostgreSQL binaries not found ({PG_BIN / tool}); set PG_BIN or install postgresql-15"
    try:
        pwd.getpwnam(PG_USER)
    except KeyError:
        return f"no '{PG_USER}' system user to run PostgreSQL as"
    if os.geteuid() != 0 and pwd.getpwuid(os.geteuid()).pw_name != PG_USER:
        return "running PostgreSQL needs root (runuser) or the postgres user"
    return None


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class PostgresCluster:
    """One running cluster (see module docstring)."""

    def __init__(self, root: Path, port: int) -> None:
        self.root = root
        self.data = root / "data"
        self.port = port

    @classmethod
    def start_new(cls, *, fsync: bool = True, prefix: str = "hub-pg-") -> PostgresCluster:
        """initdb and start a cluster in a fresh directory under /tmp (``fsync=False`` for fast tests)."""
        reason = missing_reason()
        if reason:
            raise RuntimeError(reason)
        root = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
        user = pwd.getpwnam(PG_USER)
        os.chown(root, user.pw_uid, user.pw_gid)
        os.chmod(root, 0o700)
        cluster = cls(root, free_port())
        try:
            cluster._run("initdb", "-D", str(cluster.data), "-A", "trust", "-U", PG_USER, "-E", "UTF8",
                         "--locale=C.UTF-8", "--no-sync")
            options = [f"-p {cluster.port}", f"-k {root}", "-c listen_addresses=127.0.0.1",
                       "-c max_connections=200", "-c shared_buffers=128MB"]
            if not fsync:
                options += ["-c fsync=off", "-c synchronous_commit=off", "-c full_page_writes=off"]
            cluster._run("pg_ctl", "-D", str(cluster.data), "-o", " ".join(options), "-l", str(root / "server.log"),
                         "-w", "-t", "60", "start")
        except BaseException:
            cluster.stop()
            raise
        return cluster

    # -- databases --------------------------------------------------------------------------------------
    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://{PG_USER}@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str, template: str | None = None) -> str:
        extra = f" TEMPLATE {_ident(template)}" if template else ""
        self.execute(f"CREATE DATABASE {_ident(name)}{extra}")
        return self.url(name)

    def drop_database(self, name: str) -> None:
        self.execute(f"DROP DATABASE IF EXISTS {_ident(name)} WITH (FORCE)")

    def execute(self, statement: str) -> None:
        """One statement on the maintenance database, outside a transaction (CREATE/DROP DATABASE)."""
        import psycopg

        with psycopg.connect(host="127.0.0.1", port=self.port, user=PG_USER, dbname="postgres",
                             autocommit=True) as conn:
            conn.execute(statement)

    # -- lifecycle --------------------------------------------------------------------------------------
    @property
    def pid(self) -> int | None:
        try:
            return int((self.data / "postmaster.pid").read_text().split("\n", 1)[0])
        except (OSError, ValueError):
            return None

    def stop(self, timeout: float = 30.0) -> None:
        """Fast shutdown by the pid file's pid (SIGINT), SIGKILL if it lingers; the directory is removed."""
        pid = self.pid
        if pid is not None:
            try:
                os.kill(pid, signal.SIGINT)
                deadline = time.monotonic() + timeout
                while time.monotonic() < deadline and _alive(pid):
                    time.sleep(0.05)
                if _alive(pid):
                    os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        shutil.rmtree(self.root, ignore_errors=True)

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join((self.root / "server.log").read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def _run(self, tool: str, *args: str) -> None:
        command = [str(PG_BIN / tool), *args]
        if pwd.getpwuid(os.geteuid()).pw_name != PG_USER:
            command = ["runuser", "-u", PG_USER, "--", *command]
        result = subprocess.run(command, cwd="/tmp", capture_output=True, text=True, timeout=120)
        if result.returncode != 0:
            raise RuntimeError(f"{tool} failed ({result.returncode}): {result.stderr.strip()}\n{self.log_tail()}")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _ident(name: str) -> str:
    if not name.replace("_", "").isalnum():
        raise ValueError(f"not a plain identifier: {name!r}")
    return f'"{name}"'


class TemplateDatabases:
    """Fresh migrated MemoryHub databases, copied from one template migrated once."""

    TEMPLATE = "memory_hub_template"

    def __init__(self, cluster: PostgresCluster) -> None:
        from migrations.runner import upgrade_to_head

        self.cluster = cluster
        self._count = 0
        upgrade_to_head(cluster.create_database(self.TEMPLATE), "memory_hub")

    def fresh(self) -> tuple[str, str]:
        """``(name, url)`` of a new database holding the migrated, empty schema."""
        self._count += 1
        name = f"t{os.getpid()}_{self._count}"
        return name, self.cluster.create_database(name, template=self.TEMPLATE)

    def empty(self) -> tuple[str, str]:
        """``(name, url)`` of a new database without any schema (for migration tests)."""
        self._count += 1
        name = f"e{os.getpid()}_{self._count}"
        return name, self.cluster.create_database(name)

    def drop(self, name: str) -> None:
        self.cluster.drop_database(name)
