"""Confined file cleanup for UnifiedUtilsAgent.

Every sweep runs inside one configured directory (its *root*) and never leaves it:

* The walk holds an open directory descriptor for each level and names entries relative to it
  (``openat``/``unlinkat`` through ``dir_fd``), opening subdirectories with ``O_NOFOLLOW``: a symlink is
  never followed, neither to a directory nor to a file, even if an entry is swapped for a link while
  the sweep runs. A symlink found in a directory is itself an entry of that directory: deleting it
  removes the link, never its target.
* A path from a request (``subdir``) is relative, without ``..``, empty or absolute components, and is
  opened component by component the same way; anything else is refused before the disk is touched.
* A root that is the hub's data directory, contains it, or is ``/`` is refused (a misconfigured
  ``temp_dir: "."`` must not empty the database directory).
* Only regular files and symlinks are removed; sockets, FIFOs and devices are left alone. Emptied
  subdirectories are removed only where the sweep says so (temp).
* Dry run: nothing is removed; the result lists what would go (``would_remove``, relative paths).
"""
from __future__ import annotations

import os
import stat
import time
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any
from collections.abc import Callable

from bus.errors import BadRequest
from bus.settings import setting

@dataclass(frozen=True)
class UtilsSettings:
    """The ``utils`` section (UnifiedUtilsAgent); relative paths are under ``storage.data_dir``."""

    temp_dir: str = "utils/temp"
    logs_dir: str = "utils/logs"
    cache_dir: str = "utils/cache"
    browser_cache_dirs: tuple[str, ...] = setting(
        (), doc='e.g. ["~/.cache/google-chrome", "~/.cache/mozilla/firefox"]; [] = none')
    dry_run: bool = setting(False, doc="true: every cleanup only reports what it would remove")
    log_age_days: int = setting(7, minimum=0, doc="cleanup_logs removes *.log files older than this")
    cache_age_days: int = setting(1, minimum=0, doc="cleanup_cache removes files older than this")
    max_entries: int = setting(200000, minimum=1, doc="entries examined per sweep at most")
    max_depth: int = setting(32, minimum=0, maximum=4096, doc="directory levels below the root at most")
    max_listed: int = setting(1000, minimum=0, doc="dry-run paths listed at most (the count is always exact)")

DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
Match = Callable[[str, os.stat_result], bool]


@dataclass
class SweepResult:
    directory: str
    dry_run: bool
    files_removed: int = 0
    bytes_freed: int = 0
    dirs_removed: int = 0
    would_remove: list[str] = field(default_factory=list)
    would_remove_count: int = 0
    errors: list[str] = field(default_factory=list)
    truncated: bool = False

    def legacy(self) -> dict[str, Any]:
        """The legacy reply keys (``files_removed``, ``errors``) plus the dry-run listing when dry."""
        reply: dict[str, Any] = {"files_removed": self.files_removed, "errors": list(self.errors)}
        if self.dry_run:
            reply.update(dry_run=True, would_remove=list(self.would_remove))
        return reply

    def native(self) -> dict[str, Any]:
        return {"directory": self.directory, "dry_run": self.dry_run, "files_removed": self.files_removed,
                "bytes_freed": self.bytes_freed, "dirs_removed": self.dirs_removed,
                "would_remove": list(self.would_remove), "would_remove_count": self.would_remove_count,
                "errors": list(self.errors), "truncated": self.truncated}


def resolve_root(configured: str, data_dir: Path) -> Path:
    """Absolute, resolved root for a configured directory (relative = under ``data_dir``)."""
    path = Path(os.path.expanduser(configured))
    if not path.is_absolute():
        path = data_dir / path
    root = path.resolve()
    data = data_dir.resolve()
    if not configured.strip() or root == Path(root.anchor) or root == data or root in data.parents:
        raise BadRequest(f"cleanup directory {configured!r} resolves to {root}, which is or contains the "
                         f"hub's data directory or the filesystem root: refused")
    return root


def safe_relative(subdir: str | None) -> tuple[str, ...]:
    """The components of a request's relative path; ``BadRequest`` for anything that could escape."""
    if subdir in (None, ""):
        return ()
    if "\x00" in subdir or "\\" in subdir:
        raise BadRequest("subdir contains a forbidden character", details={"field": "subdir"})
    pure = PurePosixPath(subdir)
    if pure.is_absolute():
        raise BadRequest("subdir must be relative to the cleanup directory", details={"field": "subdir"})
    parts = tuple(subdir.split("/"))
    if any(part in ("", ".", "..") for part in parts):
        raise BadRequest("subdir must not contain '..', '.' or empty components", details={"field": "subdir"})
    return parts


class Sweeper:
    """One sweep of a root (optionally a ``subdir`` of it) with a file matcher."""

    def __init__(self, root: Path, match: Match, *, dry_run: bool, remove_empty_dirs: bool = False,
                 max_entries: int = 200000, max_depth: int = 32, max_listed: int = 1000):
        self.root = root
        self.match = match
        self.remove_empty_dirs = remove_empty_dirs
        self.max_entries = max_entries
        self.max_depth = max_depth
        self.max_listed = max_listed
        self.result = SweepResult(directory=str(root), dry_run=dry_run)
        self._seen = 0

    def run(self, subdir: str | None = None) -> SweepResult:
        parts = safe_relative(subdir)
        try:
            fd = os.open(self.root, DIR_FLAGS)
        except FileNotFoundError:
            return self.result                      # nothing to clean (the legacy agent answered the same)
        except OSError as exc:
            self.result.errors.append(f"cannot open {self.root}: {exc.strerror}")
            return self.result
        try:
            for part in parts:
                parent, fd = fd, -1
                fd = self._descend(parent, part)      # closes parent; -1 when the subdir is absent
                if fd < 0:
                    return self.result
            self._walk(fd, "/".join(parts), 0)
        finally:
            if fd >= 0:
                os.close(fd)
        return self.result

    def _descend(self, fd: int, part: str) -> int:
        try:
            child = os.open(part, DIR_FLAGS, dir_fd=fd)
        except FileNotFoundError:
            child = -1
        except OSError as exc:
            raise BadRequest(f"subdir component {part!r} is not a directory inside the cleanup directory "
                             f"({exc.strerror})", details={"field": "subdir"}) from exc
        finally:
            os.close(fd)
        return child

    def _walk(self, dir_fd: int, rel: str, depth: int) -> None:
        try:
            with os.scandir(dir_fd) as entries:
                names = [entry.name for entry in entries]
        except OSError as exc:
            self.result.errors.append(f"cannot list {rel or '.'}: {exc.strerror}")
            return
        for name in names:
            self._seen += 1
            if self._seen > self.max_entries:
                self.result.truncated = True
                return
            self._entry(dir_fd, name, f"{rel}/{name}" if rel else name, depth)

    def _entry(self, dir_fd: int, name: str, rel: str, depth: int) -> None:
        try:
            st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        except FileNotFoundError:
            return
        except OSError as exc:
            self.result.errors.append(f"cannot stat {rel}: {exc.strerror}")
            return
        if stat.S_ISDIR(st.st_mode):
            self._subdir(dir_fd, name, rel, depth)
        elif (stat.S_ISREG(st.st_mode) or stat.S_ISLNK(st.st_mode)) and self.match(name, st):
            self._remove(dir_fd, name, rel, st)

    def _subdir(self, dir_fd: int, name: str, rel: str, depth: int) -> None:
        if depth + 1 > self.max_depth:
            self.result.truncated = True
            return
        try:
            child = os.open(name, DIR_FLAGS, dir_fd=dir_fd)
        except OSError as exc:                      # ELOOP: swapped for a symlink meanwhile; never followed
            self.result.errors.append(f"cannot open {rel}: {exc.strerror}")
            return
        try:
            self._walk(child, rel, depth + 1)
        finally:
            os.close(child)
        if self.remove_empty_dirs and not self.result.dry_run:
            try:
                os.rmdir(name, dir_fd=dir_fd)
                self.result.dirs_removed += 1
            except OSError:
                pass                                # not empty (kept files) or gone: fine

    def _remove(self, dir_fd: int, name: str, rel: str, st: os.stat_result) -> None:
        size = st.st_size if stat.S_ISREG(st.st_mode) else 0
        if self.result.dry_run:
            self.result.would_remove_count += 1
            if len(self.result.would_remove) < self.max_listed:
                self.result.would_remove.append(rel)
            else:
                self.result.truncated = True
            return
        try:
            os.unlink(name, dir_fd=dir_fd)          # unlinkat: removes a symlink itself, never its target
        except FileNotFoundError:
            return
        except OSError as exc:
            self.result.errors.append(f"cannot remove {rel}: {exc.strerror}")
            return
        self.result.files_removed += 1
        self.result.bytes_freed += size


def older_than(days: float, suffix: str | None = None, clock: Callable[[], float] = time.time) -> Match:
    """Match files (by their own mtime) older than ``days``, optionally only names ending in ``suffix``."""
    limit = float(days) * 86400.0

    def match(name: str, st: os.stat_result) -> bool:
        if suffix is not None and not name.endswith(suffix):
            return False
        return clock() - st.st_mtime > limit

    return match


def everything(_name: str, _st: os.stat_result) -> bool:
    return True
