"""UnifiedUtilsAgent in a running MemoryHub: every legacy action as a legacy client sends it, the health
port, native and route forms (ZeroMQ and HTTP), dry run through GET, bad input."""
from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.request

import pytest

from bus.errors import BadRequest
from tests.support.hubproc import HubProcess

DAY = 86400


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    root = tmp_path_factory.mktemp("utils-hub")
    browser = root / "browser-cache"
    (browser / "Cache").mkdir(parents=True)
    config = {"utils": {"browser_cache_dirs": [str(browser)], "log_age_days": 7, "cache_age_days": 1}}
    with HubProcess("memory_hub", root / "data", config=config) as running:
        running.browser = browser
        yield running


def put(path, age_days: float = 0.0, text: str = "x"):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    if age_days:
        stamp = time.time() - age_days * DAY
        os.utime(path, (stamp, stamp))
    return path


def test_every_legacy_action(hub):
    data = hub.data_dir
    put(data / "utils" / "temp" / "t1")
    put(data / "utils" / "logs" / "old.log", 10)
    put(data / "utils" / "logs" / "new.log", 1)
    put(data / "utils" / "cache" / "stale", 2)
    put(hub.browser / "Cache" / "blob", text="12345")
    assert hub.legacy_request(7118, {"action": "cleanup_temp_files"}) == {"files_removed": 1, "errors": []}
    assert hub.legacy_request(7118, {"action": "cleanup_logs"}) == {"files_removed": 1, "errors": []}
    assert hub.legacy_request(7118, {"action": "cleanup_cache"}) == {"files_removed": 1, "errors": []}
    assert hub.legacy_request(7118, {"action": "cleanup_browser_cache"}) == {
        "browsers_cleaned": 1, "files_removed": 1, "bytes_freed": 5, "errors": []}
    assert hub.legacy_request(7118, {"action": "run_windows_disk_cleanup"}) == {
        "status": "error", "message": "Windows Disk Cleanup is only available on Windows", "errors": []}
    system = hub.legacy_request(7118, {"action": "cleanup_system"})
    assert set(system) == {"temp_files", "logs", "cache", "browser_cache"}
    assert (data / "utils" / "logs" / "new.log").exists()
    health = hub.legacy_request(7118, {"action": "health_check"})
    assert health["agent"] == "UnifiedUtilsAgent" and health["port"] == 7118 and health["request_count"] >= 7
    assert hub.legacy_request(8118, None, raw=b"ping")["agent"] == "UnifiedUtilsAgent"
    assert hub.legacy_request(7118, {"action": "format_disk"}) == {"status": "error",
                                                                   "message": "Unknown action: format_disk"}


def test_native_route_and_http_forms(hub):
    cache = hub.data_dir / "utils" / "cache"
    put(cache / "a" / "old", 3)
    with hub.client() as client:
        preview = client.route("GET", "/utils/cleanup_cache")
        assert preview["dry_run"] is True and preview["would_remove"] == ["a/old"]
        assert (cache / "a" / "old").exists()
        done = client.route("POST", "/utils/cleanup_cache", {"subdir": "a"})
        assert done["files_removed"] == 1 and done["dry_run"] is False
        assert client.call("UnifiedUtilsAgent", "cleanup_temp_files", {"dry_run": True})["dry_run"] is True
        with pytest.raises(BadRequest):
            client.call("UnifiedUtilsAgent", "run_windows_disk_cleanup")
        with pytest.raises(BadRequest):
            client.route("POST", "/utils/rm_rf")
        with pytest.raises(BadRequest):
            client.call("UnifiedUtilsAgent", "cleanup_logs", {"subdir": 7})
        with pytest.raises(BadRequest):
            client.call("UnifiedUtilsAgent", "cleanup_logs", {"subdir": "x" * 5000})
    put(cache / "b" / "old", 3)
    req = urllib.request.Request(hub.http_url + "/utils/cleanup_cache", method="POST", data=b'{"subdir": "b"}',
                                 headers={"Authorization": f"Bearer {hub.token()}",
                                          "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as resp:
        assert json.loads(resp.read())["files_removed"] == 1
    req = urllib.request.Request(hub.http_url + "/utils/cleanup_cache", method="POST", data=b'{"subdir": "../.."}',
                                 headers={"Authorization": f"Bearer {hub.token()}"})
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(req, timeout=30)
    assert err.value.code == 400
