"""The SQLite file becomes read-only, or the disk fills up: clear errors, no crash, no corruption.

* Read-only at start (a read-only bind mount of the database file): the hub refuses to start, exits non-zero
  with the reason in its log, and leaves no redis-server behind; the file is intact and the hub starts once
  it is writable again.
* Read-only at run time (``chattr +i`` on the database and its WAL: even root's writes fail): writes answer
  ``unavailable`` (legacy: ``{"status":"error","message":...}``), reads that do not write keep working, the hub
  keeps serving, and recovers by itself once the flag is cleared.
* Disk full (the data directory on a small tmpfs, filled up): SQL and Redis writes answer ``unavailable`` /
  ``internal`` (legacy: an error reply with a message), ping and health still answer, writes succeed again
  once space is freed, every acknowledged write is in the file, and ``integrity_check`` passes.

Mounts and ``chattr`` need root (CAP_SYS_ADMIN / CAP_LINUX_IMMUTABLE) and a file system that supports them:
each test skips with the reason when this machine refuses.
"""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from bus.errors import HubError
from tests.reliability.support import (DB_NAME, MountRefused, bind_readonly, count_rows, integrity_check,
                                       mount_tmpfs, unmount, wait_for)
from tests.support.hubproc import HubProcess

pytestmark = pytest.mark.timeout(180)
ADD = ("MemoryOrchestratorService", "add_memory")


def seed(hub: HubProcess, n: int = 5) -> list[str]:
    return [hub.legacy_request(7140, {"action": "add_memory", "data": {"content": f"seed {i}"}})["memory_id"]
            for i in range(n)]


def redis_servers_in(data_dir: Path) -> list[int]:
    """Live redis-server processes whose working directory is ``data_dir``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if "redis" in (entry / "comm").read_text() and Path(os.readlink(entry / "cwd")) == data_dir.resolve():
                found.append(int(entry.name))
        except OSError:
            continue
    return found


def native_error(call) -> str | None:
    """The wire code of a native call's error, None when it succeeded."""
    try:
        call()
    except HubError as err:
        return err.code
    return None


def chattr(flag: str, *paths: Path) -> None:
    try:
        result = subprocess.run(["chattr", flag, *map(str, paths)], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        pytest.skip(f"chattr unavailable: {exc}")
    if result.returncode != 0:
        pytest.skip(f"chattr {flag} refused here (needs root and ext4/xfs-like flags): {result.stderr.strip()}")


def test_read_only_database_at_start_is_refused_cleanly(tmp_path):
    data_dir = tmp_path / "hub"
    with HubProcess("memory_hub", data_dir) as hub:
        ids = seed(hub)
    db = data_dir / DB_NAME
    try:
        bind_readonly(db)
    except MountRefused as exc:
        pytest.skip(f"cannot make a read-only bind mount here: {exc}")
    hub = HubProcess("memory_hub", data_dir, startup_timeout=60)
    try:
        with pytest.raises(RuntimeError, match="exited with"):
            hub.start()
        assert hub.proc.returncode != 0
        assert "database" in hub.log_tail(60)
        assert redis_servers_in(data_dir) == []
    finally:
        hub.stop()
        unmount(db)
    assert integrity_check(db) == "ok"
    with HubProcess("memory_hub", data_dir) as again, again.client() as client:
        found = client.call("MemoryOrchestratorService", "batch_get_memories", {"memory_ids": ids})
        assert found["missing"] == []


def test_read_only_database_while_serving(tmp_path):
    data_dir = tmp_path / "hub"
    with HubProcess("memory_hub", data_dir) as hub, hub.client() as client:
        ids = seed(hub)
        files = [data_dir / DB_NAME, data_dir / f"{DB_NAME}-wal"]
        chattr("+i", *files)
        try:
            legacy = hub.legacy_request(7140, {"action": "add_memory", "data": {"content": "refused"}})
            assert legacy["status"] == "error" and legacy["message"], legacy
            assert native_error(lambda: client.call(*ADD, {"content": "refused"})) == "unavailable"
            assert native_error(lambda: client.call("MemoryClient", "kv_set", {"key": "k", "value": 1})) \
                == "unavailable"
            memory = client.call("MemoryOrchestratorService", "get_memory", {"memory_id": ids[0], "touch": False})
            assert memory["content"] == "seed 0"                              # reads go on
            assert client.call("hub", "ping")["pong"] is True
        finally:
            chattr("-i", *files)
        assert wait_for(lambda: native_error(lambda: client.call(*ADD, {"content": "writable again"})) is None,
                        timeout=30)
        ids.append(client.call(*ADD, {"content": "after"})["memory_id"])
        assert hub.proc.poll() is None
    assert integrity_check(data_dir / DB_NAME) == "ok"
    assert count_rows(data_dir / DB_NAME, "memories", ids, "memory_id") == len(ids)


def fill(directory: Path) -> Path:
    """Write a file until the file system says ENOSPC; returns it (delete it to free the space)."""
    filler = directory / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        while True:
            os.write(fd, b"\0" * 65536)
    except OSError:
        pass
    try:
        while True:
            os.write(fd, b"\0" * 512)
    except OSError:
        pass
    os.close(fd)
    return filler


def test_disk_full_gives_clear_errors_and_no_corruption(tmp_path):
    mount = tmp_path / "small"
    try:
        mount_tmpfs(mount, "16m")
    except MountRefused as exc:
        pytest.skip(f"cannot mount a small tmpfs here: {exc}")
    try:
        hub = HubProcess("memory_hub", mount / "hub")
        hub.log_path = tmp_path / "hub.log"         # the log is not on the full disk (journald in production)
        with hub, hub.client() as client:
            ids = seed(hub, 10)
            filler = fill(mount)
            errors = [hub.legacy_request(7140, {"action": "add_memory", "data": {"content": "x" * 4000 + str(i)}})
                      for i in range(20)]
            acked = [r["memory_id"] for r in errors if r.get("status") == "success"]
            refused = [r for r in errors if r.get("status") != "success"]
            assert refused, "a full disk must refuse some writes"
            for reply in refused:
                assert reply["status"] == "error" and (reply.get("message") or reply.get("error")), reply
            assert native_error(lambda: client.call(*ADD, {"content": "y" * 4000})) in ("unavailable", "internal")
            assert native_error(lambda: client.call("MemoryClient", "kv_set", {"key": "k", "value": "v" * 4000})) \
                in ("unavailable", "internal")
            cache = [hub.legacy_request(7102, {"action": "put", "cache_type": "nlu_results", "key": f"k{i}",
                                               "value": "v" * 4000}) for i in range(5)]
            assert all(r["status"] in ("success", "error") for r in cache)
            assert client.call("hub", "ping")["pong"] is True
            assert client.call("hub", "health")["status"] in ("ok", "degraded", "down")
            filler.unlink()
            assert wait_for(lambda: native_error(lambda: client.call(*ADD, {"content": "room again"})) is None,
                            timeout=30)
            assert wait_for(lambda: hub.legacy_request(7102, {"action": "put", "cache_type": "nlu_results",
                                                              "key": "after", "value": 1})["status"] == "success",
                            timeout=30)
            ids += acked + [client.call(*ADD, {"content": "after"})["memory_id"]]
            assert hub.proc.poll() is None
        db = mount / "hub" / DB_NAME
        assert integrity_check(db) == "ok"
        assert count_rows(db, "memories", ids, "memory_id") == len(ids)
    finally:
        unmount(mount)
