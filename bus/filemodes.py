"""Private data: the hub's data directory is 0700 and everything in it 0600 (directories 0700), whoever
created them. ``main`` sets the umask to 077 before anything is opened, so SQLite files, the embedded
redis-server's files (it inherits the umask) and the secret are private when the hub creates them;
``secure_data_dir`` tightens what someone else created earlier (``make run`` before this rule, a log file
the launcher opened) when it belongs to the hub's user. Symlinks are left alone.
"""
from __future__ import annotations

import os
import stat
from pathlib import Path

from bus.log import get_logger

log = get_logger("bus.filemodes")

PRIVATE_UMASK = 0o077


def secure_data_dir(path: Path) -> int:
    """Create ``path`` 0700 if needed and tighten its tree; returns how many modes were changed."""
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    changed = _tighten(path)
    for root, dirs, files in os.walk(path):
        for name in (*dirs, *files):
            changed += _tighten(Path(root) / name)
    if changed:
        log.warning("data_dir_modes_tightened", data_dir=str(path), changed=changed)
    return changed


def _tighten(path: Path) -> int:
    try:
        info = os.lstat(path)
    except OSError:
        return 0
    if stat.S_ISLNK(info.st_mode) or info.st_uid != os.getuid() or not info.st_mode & 0o077:
        return 0
    wanted = 0o700 if stat.S_ISDIR(info.st_mode) else stat.S_IMODE(info.st_mode) & 0o700
    try:
        os.chmod(path, wanted)
    except OSError:
        return 0
    return 1
