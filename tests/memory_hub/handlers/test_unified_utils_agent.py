"""UnifiedUtilsAgent on real directories: confinement (``..``, absolute paths, symlinks to files and
directories, a directory swapped for a symlink mid-walk), ages, dry run, legacy replies."""
from __future__ import annotations

import os
import platform
import time
from pathlib import Path

import pytest

from agents.memory_hub.cleanup import DIR_FLAGS, Sweeper, UtilsSettings, everything, resolve_root, safe_relative
from agents.memory_hub.handlers.unified_utils_agent import UnifiedUtilsAgent
from bus.config import ConfigError
from bus.errors import BadRequest
from bus.handler import CallContext
from bus.settings import from_mapping

DAY = 86400


def make_agent(data_dir: Path, **utils) -> UnifiedUtilsAgent:
    return UnifiedUtilsAgent(from_mapping(UtilsSettings, utils, "utils"), data_dir)


def write(path: Path, text: str = "x", age_days: float = 0.0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    if age_days:
        stamp = time.time() - age_days * DAY
        os.utime(path, (stamp, stamp))
    return path


@pytest.fixture
def layout(tmp_path):
    """data dir with the default utils dirs, plus an 'outside' tree that must never be touched."""
    data = tmp_path / "data"
    outside = tmp_path / "outside"
    write(outside / "precious.txt", "keep me")
    write(outside / "dir" / "inner.log", "keep me too", age_days=30)
    write(data / "memory_hub.db", "database")
    return data, outside


def outside_intact(outside: Path) -> bool:
    return ((outside / "precious.txt").read_text() == "keep me"
            and (outside / "dir" / "inner.log").read_text() == "keep me too")


def ctx() -> CallContext:
    return CallContext(agent="UnifiedUtilsAgent", action="x")


# ------------------------------------------------------------------------------------------- legacy

def test_temp_cleanup_removes_files_and_links_but_never_link_targets(layout):
    data, outside = layout
    temp = data / "utils" / "temp"
    write(temp / "a.tmp")
    write(temp / "nested" / "deep" / "b.tmp")
    (temp / "link-to-file").symlink_to(outside / "precious.txt")
    (temp / "link-to-dir").symlink_to(outside / "dir", target_is_directory=True)
    (temp / "nested" / "up").symlink_to(Path("..") / ".." / ".." / ".." / "outside")
    agent = make_agent(data)
    reply = agent.handle_legacy({"action": "cleanup_temp_files"}, 7118)
    assert reply == {"files_removed": 5, "errors": []}
    assert outside_intact(outside)
    assert list(temp.iterdir()) == []                       # emptied subdirectories went too
    assert (data / "memory_hub.db").read_text() == "database"


def test_logs_cleanup_only_old_log_files(layout):
    data, outside = layout
    logs = data / "utils" / "logs"
    old = write(logs / "old.log", age_days=8)
    fresh = write(logs / "fresh.log", age_days=6)
    other = write(logs / "old.txt", age_days=30)
    nested = write(logs / "sub" / "older.log", age_days=9)
    (logs / "evil.log").symlink_to(outside / "dir" / "inner.log")   # link is new (its own mtime)
    reply = make_agent(data).handle_legacy({"action": "cleanup_logs"}, 7118)
    assert reply == {"files_removed": 2, "errors": []}
    assert not old.exists() and not nested.exists() and fresh.exists() and other.exists()
    assert outside_intact(outside)


def test_cache_cleanup_age_is_configurable(layout):
    data, _ = layout
    cache = data / "utils" / "cache"
    write(cache / "two-days", age_days=2)
    write(cache / "hour", age_days=1 / 24)
    assert make_agent(data).handle_legacy({"action": "cleanup_cache"}, 7118) == {"files_removed": 1, "errors": []}
    assert make_agent(data, cache_age_days=0).handle_legacy({"action": "cleanup_cache"}, 7118)["files_removed"] == 1


def test_request_parameters_are_ignored_on_legacy(layout):
    """A legacy client naming a directory cannot redirect the cleanup (the legacy agent ignored them too)."""
    data, outside = layout
    reply = make_agent(data).handle_legacy({"action": "cleanup_temp_files", "temp_dir": str(outside),
                                            "dir": "../../outside"}, 7118)
    assert reply == {"files_removed": 0, "errors": []}
    assert outside_intact(outside)


def test_dry_run_setting_lists_and_keeps(layout):
    data, _ = layout
    temp = data / "utils" / "temp"
    write(temp / "a.tmp")
    write(temp / "d" / "b.tmp")
    reply = make_agent(data, dry_run=True).handle_legacy({"action": "cleanup_temp_files"}, 7118)
    assert reply["files_removed"] == 0 and reply["dry_run"] is True
    assert sorted(reply["would_remove"]) == ["a.tmp", "d/b.tmp"]
    assert (temp / "a.tmp").exists() and (temp / "d" / "b.tmp").exists()


def test_browser_cache_is_off_by_default_and_confined_when_configured(layout, tmp_path):
    data, outside = layout
    assert make_agent(data).handle_legacy({"action": "cleanup_browser_cache"}, 7118) == {
        "browsers_cleaned": 0, "files_removed": 0, "bytes_freed": 0, "errors": []}
    chrome = tmp_path / "home" / ".cache" / "google-chrome"
    write(chrome / "Default" / "Cache" / "f1", "12345")
    (chrome / "Default" / "escape").symlink_to(outside, target_is_directory=True)
    agent = make_agent(data, browser_cache_dirs=[str(chrome), str(tmp_path / "absent")])
    reply = agent.handle_legacy({"action": "cleanup_browser_cache"}, 7118)
    assert reply == {"browsers_cleaned": 1, "files_removed": 2, "bytes_freed": 5, "errors": []}
    assert (chrome / "Default" / "Cache").is_dir() and outside_intact(outside)


def test_windows_disk_cleanup_on_linux(layout):
    data, _ = layout
    agent = make_agent(data)
    assert platform.system() == "Linux"
    assert agent.handle_legacy({"action": "run_windows_disk_cleanup"}, 7118) == {
        "status": "error", "message": "Windows Disk Cleanup is only available on Windows", "errors": []}
    with pytest.raises(BadRequest, match="not supported on this OS"):
        agent.run_windows_disk_cleanup({}, ctx())


def test_cleanup_system_aggregates(layout):
    data, outside = layout
    write(data / "utils" / "temp" / "t")
    write(data / "utils" / "logs" / "l.log", age_days=10)
    reply = make_agent(data).handle_legacy({"action": "cleanup_system"}, 7118)
    assert reply == {"temp_files": {"files_removed": 1, "errors": []}, "logs": {"files_removed": 1, "errors": []},
                     "cache": {"files_removed": 0, "errors": []},
                     "browser_cache": {"browsers_cleaned": 0, "files_removed": 0, "bytes_freed": 0, "errors": []}}
    assert outside_intact(outside)


def test_legacy_health_unknown_and_garbage(layout):
    data, _ = layout
    agent = make_agent(data)
    agent.handle_legacy({"action": "nope"}, 7118)
    assert agent.handle_legacy({"action": "nope"}, 7118) == {"status": "error", "message": "Unknown action: nope"}
    assert agent.handle_legacy([1], 7118) == {"status": "error", "error": "'list' object has no attribute 'get'"}
    health = agent.handle_legacy({"action": "health_check"}, 7118)
    assert health["status"] == "ok" and health["agent"] == "UnifiedUtilsAgent" and health["port"] == 7118
    assert health["request_count"] == 4 and health["uptime_seconds"] >= 0 and "timestamp" in health
    assert agent.legacy_health(8118)["agent"] == "UnifiedUtilsAgent"


# ------------------------------------------------------------------------------------------- native

def test_native_subdir_is_confined(layout):
    data, outside = layout
    temp = data / "utils" / "temp"
    write(temp / "keep" / "k")
    write(temp / "job" / "j1")
    (temp / "linked").symlink_to(outside, target_is_directory=True)
    agent = make_agent(data)
    for bad in ("..", "../..", "job/../..", "/etc", str(outside), "job//x", "./job", "linked", "linked/dir",
                "a\x00b"):
        with pytest.raises(BadRequest):
            agent.cleanup_temp_files({"subdir": bad, "dry_run": None}, ctx())
    assert outside_intact(outside) and (temp / "job" / "j1").exists()
    reply = agent.cleanup_temp_files({"subdir": "job", "dry_run": None}, ctx())
    assert reply["files_removed"] == 1 and reply["directory"] == str(temp.resolve())
    assert (temp / "keep" / "k").exists()
    assert agent.cleanup_temp_files({"subdir": "missing/dir", "dry_run": None}, ctx())["files_removed"] == 0


def test_native_dry_run_and_route_actions(layout):
    data, _ = layout
    write(data / "utils" / "cache" / "old", "abc", age_days=3)
    agent = make_agent(data)
    preview = agent.preview({"operation": "cleanup_cache", "subdir": None, "dry_run": None}, ctx())
    assert preview["dry_run"] is True and preview["would_remove"] == ["old"] and preview["would_remove_count"] == 1
    assert (data / "utils" / "cache" / "old").exists()
    done = agent.operation({"operation": "cleanup_cache", "subdir": None, "dry_run": None}, ctx())
    assert done["files_removed"] == 1 and done["bytes_freed"] == 3 and done["dry_run"] is False
    with pytest.raises(BadRequest):
        agent.operation({"operation": "cleanup_system", "subdir": "x", "dry_run": None}, ctx())
    system = agent.cleanup_system({"dry_run": True}, ctx())
    assert set(system) == {"temp_files", "logs", "cache", "browser_cache"}
    assert system["temp_files"]["dry_run"] is True


def test_dry_run_setting_cannot_be_overridden_by_a_request(layout):
    data, _ = layout
    target = write(data / "utils" / "temp" / "t")
    reply = make_agent(data, dry_run=True).cleanup_temp_files({"subdir": None, "dry_run": False}, ctx())
    assert reply["dry_run"] is True and target.exists()


# ------------------------------------------------------------------------------------------- guards

@pytest.mark.parametrize("configured", ["", ".", "..", "/", "utils/../.."])
def test_roots_that_are_or_contain_the_data_dir_are_refused(tmp_path, configured):
    data = tmp_path / "data"
    data.mkdir()
    with pytest.raises(BadRequest):
        resolve_root(configured, data)
    with pytest.raises(ConfigError):
        make_agent(data, temp_dir=configured)


def test_relative_roots_are_under_the_data_dir(tmp_path):
    assert resolve_root("utils/temp", tmp_path) == (tmp_path / "utils" / "temp").resolve()
    assert resolve_root(str(tmp_path / "x"), tmp_path / "data") == (tmp_path / "x").resolve()


def test_safe_relative():
    assert safe_relative(None) == () and safe_relative("a/b") == ("a", "b")
    for bad in ("../a", "a/..", "/a", "a//b", "a/./b", "a\\b"):
        with pytest.raises(BadRequest):
            safe_relative(bad)


def test_directory_swapped_for_a_symlink_mid_walk_is_not_followed(tmp_path):
    """The walker stats an entry, then opens it with O_NOFOLLOW: a swap in between fails closed."""
    root = tmp_path / "root"
    write(root / "victim" / "f")
    outside = tmp_path / "outside"
    write(outside / "precious")
    sweeper = Sweeper(root, everything, dry_run=False)
    fd = os.open(root, DIR_FLAGS)
    try:
        (root / "victim" / "f").unlink()
        (root / "victim").rmdir()
        (root / "victim").symlink_to(outside, target_is_directory=True)
        sweeper._subdir(fd, "victim", "victim", 0)          # as if the stat had seen a directory
    finally:
        os.close(fd)
    assert (outside / "precious").exists()
    assert sweeper.result.files_removed == 0 and "cannot open victim" in sweeper.result.errors[0]


def test_root_that_is_a_symlink_is_not_followed(tmp_path):
    outside = tmp_path / "outside"
    write(outside / "precious")
    (tmp_path / "link").symlink_to(outside, target_is_directory=True)
    result = Sweeper(tmp_path / "link", everything, dry_run=False).run()
    assert result.files_removed == 0 and result.errors and (outside / "precious").exists()
