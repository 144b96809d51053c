"""UnifiedUtilsAgent: legacy-protocol.md §2.6 (7118/8118), cleanup confined to configured directories.

Directories come from settings ``utils`` (relative paths are under the data directory); nothing in a
request can point a cleanup elsewhere, and symlinks are never followed (agents/memory_hub/cleanup.py).

Legacy port (JSON; request parameters other than `action` are ignored, as in the legacy agent):
  cleanup_temp_files       -> {files_removed, errors}          every file under utils.temp_dir
  cleanup_logs             -> {files_removed, errors}          *.log under utils.logs_dir older than log_age_days
  cleanup_cache            -> {files_removed, errors}          files under utils.cache_dir older than cache_age_days
  cleanup_browser_cache    -> {browsers_cleaned, files_removed, bytes_freed, errors}   utils.browser_cache_dirs
  run_windows_disk_cleanup -> {status:"error", message:"Windows Disk Cleanup is only available on Windows",
                               errors:[]}  on any other OS
  cleanup_system           -> {temp_files, logs, cache, browser_cache}  (each the reply above)
  health_check             -> base health + {status:"ok", agent:"UnifiedUtilsAgent", timestamp, port,
                              uptime_seconds, request_count}
  unknown                  -> {status:"error", message:"Unknown action: X"}
  With utils.dry_run the cleanup replies also carry {dry_run: true, would_remove: [relative paths]}
  and remove nothing. Success replies carry no `status` key (legacy).
Legacy health port: the same health reply for any message.

Native (agent "UnifiedUtilsAgent"):
  cleanup_temp_files / cleanup_logs / cleanup_cache {subdir?, dry_run?}
      -> {directory, dry_run, files_removed, bytes_freed, dirs_removed, would_remove, would_remove_count,
          errors, truncated};  bad_request for a subdir with '..', absolute, or through a symlink
  cleanup_browser_cache {dry_run?} -> {browsers_cleaned, files_removed, bytes_freed, errors, directories:[...]}
  cleanup_system {dry_run?}        -> {temp_files, logs, cache, browser_cache}
  run_windows_disk_cleanup         -> bad_request "not supported on this OS" (anything but Windows)
  operation {operation, subdir?, dry_run?}: POST /utils/{operation} runs it; preview: GET /utils/{operation}
"""
from __future__ import annotations

import platform
import subprocess
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any
from collections.abc import Callable

from agents.memory_hub.cleanup import UtilsSettings
from agents.memory_hub.cleanup import Match, SweepResult, Sweeper, everything, older_than, resolve_root
from bus.config import ConfigError
from bus.errors import BadRequest
from bus.handler import CallContext, Handler, Route, action, base_legacy_health
from bus.legacy import LegacyCall, LegacyTable, LegacyVocabulary
from schemas.memory_hub import unified_utils_agent as schema

WINDOWS_ONLY = "Windows Disk Cleanup is only available on Windows"


class UnifiedUtilsAgent(Handler):
    name = "UnifiedUtilsAgent"
    legacy_ports = (7118,)
    legacy_health_ports = (8118,)
    legacy_vocabulary = LegacyVocabulary(missing_action="", null_action="",
                                         not_an_object="'{type}' object has no attribute 'get'",
                                         not_an_object_key="error")
    routes = (
        Route("POST", "/utils/{operation}", "operation"),
        Route("GET", "/utils/{operation}", "preview"),
    )

    def __init__(self, section: UtilsSettings, data_dir: Path):
        """``data_dir``: the hub's data directory (relative paths of the section are under it)."""
        self.settings = section
        try:
            self.roots = {key: resolve_root(getattr(section, key), data_dir)
                          for key in ("temp_dir", "logs_dir", "cache_dir")}
            self.browser_roots = [resolve_root(path, data_dir) for path in section.browser_cache_dirs]
        except BadRequest as exc:
            raise ConfigError(f"utils: {exc.message}") from exc
        self.started_at = time.time()
        self.request_count = 0
        self._count_lock = threading.Lock()

    # ------------------------------------------------------------------ domain
    def sweep(self, operation: str, subdir: str | None = None, dry_run: bool | None = None) -> SweepResult:
        key, match, remove_dirs = self._plan(operation)
        return self._sweeper(self.roots[key], match, dry_run, remove_dirs).run(subdir)

    def _plan(self, operation: str) -> tuple[str, Match, bool]:
        if operation == "cleanup_temp_files":
            return "temp_dir", everything, True
        if operation == "cleanup_logs":
            return "logs_dir", older_than(self.settings.log_age_days, ".log"), False
        if operation == "cleanup_cache":
            return "cache_dir", older_than(self.settings.cache_age_days), False
        raise BadRequest(f"unknown cleanup operation {operation!r}")

    def _sweeper(self, root: Path, match: Match, dry_run: bool | None, remove_dirs: bool = False) -> Sweeper:
        s = self.settings
        return Sweeper(root, match, dry_run=bool(s.dry_run or dry_run), remove_empty_dirs=remove_dirs,
                       max_entries=s.max_entries, max_depth=s.max_depth,
                       max_listed=s.max_listed)

    def browser_cache(self, dry_run: bool | None = None) -> dict[str, Any]:
        reply: dict[str, Any] = {"browsers_cleaned": 0, "files_removed": 0, "bytes_freed": 0, "errors": []}
        directories = []
        for root in self.browser_roots:
            if not root.is_dir():
                continue
            result = self._sweeper(root, everything, dry_run).run()
            reply["browsers_cleaned"] += 1
            reply["files_removed"] += result.files_removed
            reply["bytes_freed"] += result.bytes_freed
            reply["errors"].extend(result.errors)
            directories.append(result.native())
        if self.settings.dry_run or dry_run:
            reply.update(dry_run=True, would_remove=[f"{d['directory']}/{p}" for d in directories
                                                     for p in d["would_remove"]])
        reply["directories"] = directories
        return reply

    def windows_disk_cleanup(self) -> dict[str, Any]:
        if platform.system() != "Windows":
            return {"status": "error", "message": WINDOWS_ONLY, "errors": []}
        try:
            subprocess.run(["cleanmgr.exe", "/sagerun:1"], check=True, timeout=3600)
        except (OSError, subprocess.SubprocessError) as exc:
            message = f"Error running Windows Disk Cleanup: {exc}"
            return {"status": "error", "message": message, "errors": [str(exc)]}
        return {"status": "success", "message": "Windows Disk Cleanup completed successfully", "errors": []}

    def system(self, dry_run: bool | None = None, legacy: bool = True) -> dict[str, Any]:
        view: Callable[[SweepResult], dict] = SweepResult.legacy if legacy else SweepResult.native
        browser = self.browser_cache(dry_run)
        if legacy:
            browser.pop("directories")
        results = {"temp_files": view(self.sweep("cleanup_temp_files", None, dry_run)),
                   "logs": view(self.sweep("cleanup_logs", None, dry_run)),
                   "cache": view(self.sweep("cleanup_cache", None, dry_run)),
                   "browser_cache": browser}
        if platform.system() == "Windows" and not (dry_run or self.settings.dry_run):
            results["windows_disk_cleanup"] = self.windows_disk_cleanup()
        return results

    def run_operation(self, operation: str, subdir: str | None, dry_run: bool | None) -> dict[str, Any]:
        if operation in schema.DIRECTORY_OPERATIONS:
            return self.sweep(operation, subdir, dry_run).native()
        if subdir:
            raise BadRequest(f"{operation} takes no subdir", details={"field": "subdir"})
        if operation == "cleanup_browser_cache":
            return self.browser_cache(dry_run)
        if operation == "cleanup_system":
            return self.system(dry_run, legacy=False)
        reply = self.windows_disk_cleanup()
        if reply["message"] == WINDOWS_ONLY:
            raise BadRequest(f"run_windows_disk_cleanup is not supported on this OS ({platform.system()})")
        return reply

    # ------------------------------------------------------------------ native
    @action(schema.SWEEP)
    def cleanup_temp_files(self, args: dict, ctx: CallContext) -> dict:
        """Remove every file under utils.temp_dir (and emptied subdirectories)."""
        return self.run_operation("cleanup_temp_files", args["subdir"], args["dry_run"])

    @action(schema.SWEEP)
    def cleanup_logs(self, args: dict, ctx: CallContext) -> dict:
        """Remove *.log files older than utils.log_age_days under utils.logs_dir."""
        return self.run_operation("cleanup_logs", args["subdir"], args["dry_run"])

    @action(schema.SWEEP)
    def cleanup_cache(self, args: dict, ctx: CallContext) -> dict:
        """Remove files older than utils.cache_age_days under utils.cache_dir."""
        return self.run_operation("cleanup_cache", args["subdir"], args["dry_run"])

    @action(schema.BROWSER)
    def cleanup_browser_cache(self, args: dict, ctx: CallContext) -> dict:
        """Empty the configured browser cache directories."""
        return self.run_operation("cleanup_browser_cache", None, args["dry_run"])

    @action(schema.SYSTEM)
    def cleanup_system(self, args: dict, ctx: CallContext) -> dict:
        """Every cleanup at once."""
        return self.run_operation("cleanup_system", None, args["dry_run"])

    @action(schema.WINDOWS)
    def run_windows_disk_cleanup(self, args: dict, ctx: CallContext) -> dict:
        """Windows Disk Cleanup; bad_request on any other OS."""
        return self.run_operation("run_windows_disk_cleanup", None, None)

    @action(schema.OPERATION)
    def operation(self, args: dict, ctx: CallContext) -> dict:
        """POST /utils/{operation}."""
        return self.run_operation(args["operation"], args["subdir"], args["dry_run"])

    @action(schema.OPERATION)
    def preview(self, args: dict, ctx: CallContext) -> dict:
        """GET /utils/{operation}: the same operation as a dry run."""
        if args["operation"] == "run_windows_disk_cleanup":
            raise BadRequest("run_windows_disk_cleanup has no dry run")
        return self.run_operation(args["operation"], args["subdir"], True)

    # ------------------------------------------------------------------ legacy
    def handle_legacy(self, request: Any, port: int) -> dict:
        with self._count_lock:
            self.request_count += 1                    # every legacy request counts (health reply)
        return super().handle_legacy(request, port)

    def legacy_table(self, call: LegacyCall) -> LegacyTable:
        """The legacy actions ignore every request field but ``action``."""
        def browser(_request: dict) -> dict:
            reply = self.browser_cache()
            reply.pop("directories")
            return reply

        return LegacyTable({
            "cleanup_temp_files": lambda _r: self.sweep("cleanup_temp_files").legacy(),
            "cleanup_logs": lambda _r: self.sweep("cleanup_logs").legacy(),
            "cleanup_cache": lambda _r: self.sweep("cleanup_cache").legacy(),
            "cleanup_browser_cache": browser,
            "run_windows_disk_cleanup": lambda _r: self.windows_disk_cleanup(),
            "cleanup_system": lambda _r: self.system(),
            "health_check": lambda _r: self.legacy_health(0),
        })

    def legacy_health(self, port: int) -> dict:
        return base_legacy_health(self.name, self.started_at, status="ok", agent="UnifiedUtilsAgent",
                                  timestamp=datetime.now().isoformat(), port=self.legacy_ports[0],
                                  uptime_seconds=time.time() - self.started_at, request_count=self.request_count)

    def health_checks(self) -> dict[str, tuple[bool, Any]]:
        return {"utils_dirs": (True, {key: str(path) for key, path in self.roots.items()})}
