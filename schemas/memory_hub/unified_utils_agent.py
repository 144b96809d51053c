"""Request schemas of UnifiedUtilsAgent's native actions (see the handler's module docstring)."""
from __future__ import annotations

from schemas.base import Field, Schema

DIRECTORY_OPERATIONS = ("cleanup_temp_files", "cleanup_logs", "cleanup_cache")
OPERATIONS = DIRECTORY_OPERATIONS + ("cleanup_browser_cache", "run_windows_disk_cleanup", "cleanup_system")

SUBDIR = Field(str, max_len=1024, doc="relative path inside the configured directory (no '..', no symlinks)")
DRY_RUN = Field(bool, doc="only list what would be removed (utils.dry_run: true forces it)")

SWEEP = Schema({"subdir": SUBDIR, "dry_run": DRY_RUN}, doc="Clean one configured directory.")
BROWSER = Schema({"dry_run": DRY_RUN}, doc="Clean the configured browser cache directories.")
SYSTEM = Schema({"dry_run": DRY_RUN}, doc="Every cleanup; results per operation.")
WINDOWS = Schema({}, doc="Windows Disk Cleanup (not supported on other systems).")

OPERATION = Schema({
    "operation": Field(str, required=True, choices=OPERATIONS),
    "subdir": SUBDIR,
    "dry_run": DRY_RUN,
}, doc="Route form: POST /utils/{operation} runs it, GET /utils/{operation} is a dry run.")
