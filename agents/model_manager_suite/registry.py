"""Model registry: what GGUF models exist, their identity, header facts and validity.

Sources: every ``*.gguf`` under the configured ``models.dirs`` (recursive; a symlink whose target lies outside
its model dir is skipped) and the legacy
``model_configs`` entries (which name a file and carry serving parameters). Per model: id (configured id,
else the sanitized file stem; a clash gets ``-<sha8>``), version (first 12 hex digits of the sha256),
path, size, mtime, sha256 (streamed; cached in SQL by (path, size, mtime_ns) so a rescan does not
rehash), header metadata (``gguf_header``), valid or invalid with a reason. Rows persist in SQL table
``models``; rows of files that disappeared stay with ``present = false``.

``poll()`` compares a cheap signature (paths, sizes, mtimes) and rescans on change; ``start()`` runs it
every ``rescan_interval_s`` on a thread. Listeners get a ``ScanResult`` after each rescan that changed
something.
"""
from __future__ import annotations

import hashlib
import logging
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from collections.abc import Callable

from bus.errors import NotFound
from bus.periodic import PeriodicTask

from .models_settings import ModelsSettings
from .gguf_header import GGUFError, GGUFHeader, read_header
from .legacy_config import (ConfiguredModel, parse_load_policy, parse_model_configs, resolve_model_path,
                            sanitize_id)
from .store import ModelStore

log = logging.getLogger(__name__)
HASH_CHUNK = 4 * 1024 * 1024


@dataclass
class ModelRecord:
    id: str
    path: str
    source: str                         # "scan" or "config"
    valid: bool
    reason: str | None = None
    version: str | None = None
    size: int | None = None
    mtime: float | None = None
    sha256: str | None = None
    display_name: str = ""
    header: GGUFHeader | None = None
    config: dict[str, Any] = field(default_factory=dict)
    pinned: bool = False
    priority: int = 0

    @property
    def architecture(self) -> str | None:
        return self.header.architecture if self.header else None

    @property
    def quantization(self) -> str | None:
        return self.header.quantization if self.header else None

    @property
    def context_length(self) -> int | None:
        return self.header.context_length if self.header else None

    @property
    def parameter_count(self) -> int | None:
        return self.header.parameter_count if self.header else None

    def to_dict(self, with_metadata: bool = False) -> dict[str, Any]:
        summary = self.header.summary() if self.header else None
        if summary is not None and not with_metadata:
            summary.pop("metadata", None)
        return {
            "id": self.id, "version": self.version, "path": self.path, "source": self.source,
            "valid": self.valid, "reason": self.reason, "size": self.size, "mtime": self.mtime,
            "sha256": self.sha256, "display_name": self.display_name, "architecture": self.architecture,
            "name": self.header.name if self.header else None, "quantization": self.quantization,
            "context_length": self.context_length, "parameter_count": self.parameter_count,
            "config": dict(self.config), "pinned": self.pinned, "priority": self.priority, "header": summary,
        }


@dataclass
class ScanResult:
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)     # same id, new version (file replaced)
    invalid: list[str] = field(default_factory=list)
    hashed: int = 0                                       # files whose sha256 was computed this scan
    duration_s: float = 0.0

    @property
    def any_change(self) -> bool:
        return bool(self.added or self.removed or self.changed)


class ModelRegistry:
    def __init__(self, store: ModelStore, settings: ModelsSettings):
        self.store = store
        self.dirs = [Path(d).expanduser() for d in settings.dirs]
        self.interval = settings.rescan_interval_s
        self.configured = parse_model_configs(settings.model_configs)
        self.load_policy = parse_load_policy(settings.load_policy)
        self._pinned_cfg = {sanitize_id(str(x)) for x in settings.pinned}
        self._records: dict[str, ModelRecord] = {}
        self._headers: dict[str, tuple[int, int, GGUFHeader | GGUFError]] = {}
        self._lock = threading.RLock()
        self._scan_lock = threading.Lock()
        self._signature: tuple | None = None
        self._listeners: list[Callable[[ScanResult], None]] = []
        self._poll_task = PeriodicTask("model-registry-poll", self.interval, self.poll) if self.interval > 0 else None
        self.last_scan: float | None = None

    # -- queries --------------------------------------------------------------------------------
    def get(self, model_id: str) -> ModelRecord:
        with self._lock:
            record = self._records.get(model_id)
        if record is None:
            raise NotFound(f"no model {model_id!r}")
        return record

    def resolve(self, name: str) -> ModelRecord:
        """A model by id, by legacy load_policy preference, or by display name."""
        with self._lock:
            if name in self._records:
                return self._records[name]
            target = self.load_policy.get(name)
            if target is not None and target in self._records:
                return self._records[target]
            for record in self._records.values():
                if record.display_name == name:
                    return record
        raise NotFound(f"no model {name!r}")

    def list(self, include_invalid: bool = True) -> list[ModelRecord]:
        with self._lock:
            records = sorted(self._records.values(), key=lambda r: r.id)
        return [r for r in records if include_invalid or r.valid]

    def add_listener(self, listener: Callable[[ScanResult], None]) -> None:
        self._listeners.append(listener)

    # -- operator settings ----------------------------------------------------------------------
    def set_pinned(self, model_id: str, pinned: bool) -> None:
        self.get(model_id).pinned = bool(pinned)
        self.store.update_model(model_id, pinned=bool(pinned))

    def set_priority(self, model_id: str, priority: int) -> None:
        self.get(model_id).priority = int(priority)
        self.store.update_model(model_id, priority=int(priority))

    # -- scanning -------------------------------------------------------------------------------
    def rescan(self) -> ScanResult:
        """Rebuild the registry from the dirs and the configured models; persist; notify listeners."""
        with self._scan_lock:
            started = time.monotonic()
            result = ScanResult()
            previous_rows = {row["id"]: row for row in self.store.load_models()}
            signature = self._current_signature()
            records = self._build_records(previous_rows, result)
            self.store.sync_models(_row(r) for r in records.values())
            with self._lock:
                old = self._records
                self._records = records
            _diff(old, records, result)
            result.invalid = sorted(r.id for r in records.values() if not r.valid)
            result.duration_s = time.monotonic() - started
            self._signature = signature
            self.last_scan = time.time()
        if result.any_change:
            log.info("model registry: +%s -%s ~%s", result.added, result.removed, result.changed)
            for listener in list(self._listeners):
                try:
                    listener(result)
                except Exception:  # a listener bug must not stop scanning
                    log.exception("registry listener failed")
        return result

    def poll(self) -> ScanResult | None:
        """Rescan if any model file appeared, disappeared or changed size/mtime since the last scan."""
        if self._signature is not None and self._current_signature() == self._signature:
            return None
        return self.rescan()

    def start(self) -> None:
        if self._poll_task is not None:
            self._poll_task.start()

    def stop(self) -> None:
        if self._poll_task is not None:
            self._poll_task.stop()

    # -- internals ------------------------------------------------------------------------------
    def _scan_files(self) -> list[Path]:
        """``*.gguf`` under the model dirs whose real path stays inside that dir: a symlink (file or
        directory) pointing elsewhere is not followed, so a link to /etc/passwd is never read."""
        found: set[Path] = set()
        for base in self.dirs:
            if not base.is_dir():
                continue
            root = base.resolve()
            for path in base.rglob("*.gguf"):
                if path.is_file() and _inside(path, root):
                    found.add(path)
        return sorted(found)

    def _current_signature(self) -> tuple:
        entries = []
        paths = set(self._scan_files())
        paths.update(resolve_model_path(c.model_path, self.dirs) for c in self.configured)
        for path in sorted(paths):
            try:
                st = path.stat()
                entries.append((str(path), st.st_size, st.st_mtime_ns))
            except OSError:
                entries.append((str(path), None, None))
        return tuple(entries)

    def _build_records(self, previous: dict[str, dict], result: ScanResult) -> dict[str, ModelRecord]:
        records: dict[str, ModelRecord] = {}
        configured_paths: set[str] = set()
        for conf in self.configured:
            path = resolve_model_path(conf.model_path, self.dirs)
            configured_paths.add(_key(path))
            if conf.model_id in records:
                log.warning("model_configs: duplicate model_id %s; keeping the first", conf.model_id)
                continue
            records[conf.model_id] = self._inspect(conf.model_id, path, "config", conf, previous, result)
        id_by_path = {row["path"]: mid for mid, row in previous.items() if row.get("source") == "scan"}
        for path in self._scan_files():
            if _key(path) in configured_paths:
                continue
            record = self._inspect("", path, "scan", None, previous, result)
            record.id = self._choose_id(path, record, records, id_by_path)
            _apply_operator_settings(record, previous.get(record.id), None, self._pinned_cfg)
            records[record.id] = record
        return records

    @staticmethod
    def _choose_id(path: Path, record: ModelRecord, taken: dict[str, ModelRecord],
                   id_by_path: dict[str, str]) -> str:
        earlier = id_by_path.get(str(path))
        if earlier and earlier not in taken:
            return earlier
        base = sanitize_id(path.stem)
        if base not in taken:
            return base
        return f"{base}-{(record.sha256 or 'nohash')[:8]}"

    def _inspect(self, model_id: str, path: Path, source: str, conf: ConfiguredModel | None,
                 previous: dict[str, dict], result: ScanResult) -> ModelRecord:
        record = ModelRecord(id=model_id, path=str(path), source=source, valid=False,
                             display_name=conf.display_name if conf else path.stem,
                             config=conf.config_dict() if conf else {})
        try:
            st = path.stat()
        except OSError as exc:
            record.reason = f"file not found: {path}" if isinstance(exc, FileNotFoundError) else str(exc)
            _apply_operator_settings(record, previous.get(model_id), conf, self._pinned_cfg)
            return record
        record.size, record.mtime = st.st_size, st.st_mtime
        header = self._header(path, st)
        if isinstance(header, GGUFError):
            record.reason = header.reason
        else:
            record.header, record.valid = header, True
        try:
            record.sha256 = self._sha256(path, st, result)
            record.version = record.sha256[:12]
        except OSError as exc:
            record.valid, record.reason = False, f"cannot read file: {exc}"
        if conf is not None:
            _apply_operator_settings(record, previous.get(model_id), conf, self._pinned_cfg)
        return record

    def _header(self, path: Path, st: os.stat_result) -> GGUFHeader | GGUFError:
        cached = self._headers.get(str(path))
        if cached is not None and cached[0] == st.st_size and cached[1] == st.st_mtime_ns:
            return cached[2]
        try:
            header: GGUFHeader | GGUFError = read_header(path)
        except GGUFError as exc:
            header = exc
        self._headers[str(path)] = (st.st_size, st.st_mtime_ns, header)
        return header

    def _sha256(self, path: Path, st: os.stat_result, result: ScanResult) -> str:
        cached = self.store.cached_hash(str(path), st.st_size, st.st_mtime_ns)
        if cached:
            return cached
        digest = hashlib.sha256()
        with open(path, "rb") as fh:
            while chunk := fh.read(HASH_CHUNK):
                digest.update(chunk)
        sha = digest.hexdigest()
        self.store.remember_hash(str(path), st.st_size, st.st_mtime_ns, sha)
        result.hashed += 1
        return sha


def _inside(path: Path, root: Path) -> bool:
    try:
        real = path.resolve(strict=True)
    except (OSError, RuntimeError):
        return False
    if real == root or root in real.parents:
        return True
    log.warning("model file %s resolves outside its model dir (%s); not scanned", path, root)
    return False


def _key(path: Path) -> str:
    try:
        return str(path.resolve())
    except OSError:
        return str(path)


def _apply_operator_settings(record: ModelRecord, row: dict | None, conf: ConfiguredModel | None,
                             pinned_cfg: set[str]) -> None:
    """pinned/priority: config (if it says) > settings.pinned > what the operator set at runtime (SQL)."""
    if row is not None:
        record.pinned, record.priority = bool(row.get("pinned")), int(row.get("priority") or 0)
    if record.id in pinned_cfg:
        record.pinned = True
    if conf is not None:
        if conf.pinned is not None:
            record.pinned = conf.pinned
        if conf.priority is not None:
            record.priority = conf.priority


def _diff(old: dict[str, ModelRecord], new: dict[str, ModelRecord], result: ScanResult) -> None:
    result.added = sorted(set(new) - set(old))
    result.removed = sorted(set(old) - set(new))
    result.changed = sorted(mid for mid in set(new) & set(old)
                            if (new[mid].version, new[mid].valid) != (old[mid].version, old[mid].valid))


def _row(record: ModelRecord) -> dict[str, Any]:
    header = record.header
    return {
        "id": record.id, "version": record.version, "path": record.path, "source": record.source,
        "size": record.size, "mtime": record.mtime, "sha256": record.sha256, "valid": record.valid,
        "invalid_reason": record.reason, "display_name": record.display_name,
        "architecture": header.architecture if header else None, "model_name": header.name if header else None,
        "quantization": header.quantization if header else None,
        "context_length": header.context_length if header else None,
        "parameter_count": header.parameter_count if header else None,
        "header": _header_json(header), "config": record.config or None,
        "pinned": record.pinned, "priority": record.priority,
    }


def _header_json(header: GGUFHeader | None) -> dict[str, Any] | None:
    if header is None:
        return None
    summary = header.summary()
    summary["metadata"] = {k: v for k, v in summary["metadata"].items()
                           if not (isinstance(v, list) and len(v) > 16)}
    return summary
