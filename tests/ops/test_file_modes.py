"""Data files are private whoever creates them (issue 18 point 5): a MemoryHub that makes its own data dir
(as ``make run`` does), with the embedded redis-server, SQLite WAL files and a log file the launcher opened;
then another local user (``nobody``, via runuser) tries to read them."""
from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import tempfile
from pathlib import Path

import pytest

from tests.support.hubproc import HubProcess

PROBE = r"""
import json, os, sys
opened = []
for path in sys.argv[1:]:
    try:
        if os.path.isdir(path):
            os.listdir(path)
        else:
            with open(path, "rb") as handle:
                handle.read(16)
        opened.append(path)
    except OSError:
        pass
print(json.dumps(opened))
"""

pytestmark = pytest.mark.skipif(os.getuid() != 0 or not shutil.which("runuser")
                                or not Path("/usr/bin/python3").exists(),
                                reason="needs root, runuser and /usr/bin/python3 to act as another user")


@pytest.fixture
def open_parent():
    """A parent directory every user may traverse (pytest's own tmp dirs are 0700, which would hide the point)."""
    parent = Path(tempfile.mkdtemp(prefix="hub-modes-"))
    parent.chmod(0o755)
    yield parent
    shutil.rmtree(parent, ignore_errors=True)


def readable_by_nobody(paths: list[Path]) -> list[str]:
    out = subprocess.run(["runuser", "-u", "nobody", "--", "/usr/bin/python3", "-c", PROBE, *map(str, paths)],
                         capture_output=True, text=True, timeout=60, check=True)
    return json.loads(out.stdout)


def test_data_dir_and_files_are_private_to_the_hub_user(open_parent):
    data_dir = open_parent / "memory_hub"               # does not exist: the hub creates it
    with HubProcess("memory_hub", data_dir, config={"search": {"enabled": False}}) as hub:
        with hub.client() as client:
            client.call("AuthenticationAgent", "register", {"user_id": "secretive", "password": "long-enough"})
        assert hub.legacy_request(7102, {"action": "put", "cache_type": "t", "key": "k", "value": "private"})[
            "status"] == "success"
        files = [p for p in data_dir.rglob("*") if not p.is_symlink()]
        names = {p.name for p in files}
        assert {"memory_hub.db", "jwt.secret", "memory_hub.log"} <= names
        assert any(p.suffix == ".aof" or "appendonly" in p.name for p in files), sorted(names)
        assert stat.S_IMODE(data_dir.stat().st_mode) == 0o700
        loose = {str(p.relative_to(data_dir)): oct(stat.S_IMODE(p.stat().st_mode)) for p in files
                 if stat.S_IMODE(p.stat().st_mode) & 0o077}
        assert loose == {}
        data_dir.chmod(0o755)                            # even with the directory opened up, files stay private
        try:
            assert readable_by_nobody([p for p in files if p.is_file()]) == []
        finally:
            data_dir.chmod(0o700)
        assert readable_by_nobody([data_dir]) == []      # and the directory itself, as the hub made it
