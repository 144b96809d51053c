"""Import of the legacy model configuration into registry entries.

* ``model_configs``: legacy system_config ``main_pc_settings.model_configs``. Either a list of entries
  with ``model_id`` or a dict keyed by model id. Only enabled entries with
  ``serving_method == "gguf_direct"`` are kept (legacy GGUFModelManager did the same). Fields carried:
  model_id, display_name, model_path (relative paths resolve against the model dirs, as legacy
  ``models/<model_path>``), n_ctx, n_gpu_layers, n_threads, estimated_vram_mb, capabilities,
  idle_timeout_seconds, plus the new optional ``pinned``, ``priority`` and ``chat_format`` (a
  llama-cpp-python chat format name such as ``chatml``).
* ``load_policy``: legacy ``llm_config.yaml`` ``load_policy``: model_pref -> model id, where the value is a
  string or a mapping with ``model_id`` / ``model`` / ``default``.
"""
from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

_ID_BAD = re.compile(r"[^A-Za-z0-9._-]+")


def sanitize_id(text: str) -> str:
    """A model id from a file stem or a configured name: [A-Za-z0-9._-], no leading dots/dashes."""
    cleaned = _ID_BAD.sub("-", text.strip()).strip("-.")
    return cleaned[:200] or "model"


@dataclass
class ConfiguredModel:
    model_id: str
    model_path: str
    display_name: str
    n_ctx: int | None = None
    n_gpu_layers: int | None = None
    n_threads: int | None = None
    estimated_vram_mb: float | None = None
    capabilities: list[str] = field(default_factory=list)
    idle_timeout_seconds: float | None = None
    pinned: bool | None = None
    priority: int | None = None
    chat_format: str | None = None

    def config_dict(self) -> dict[str, Any]:
        return {
            "n_ctx": self.n_ctx, "n_gpu_layers": self.n_gpu_layers, "n_threads": self.n_threads,
            "estimated_vram_mb": self.estimated_vram_mb, "capabilities": list(self.capabilities),
            "idle_timeout_seconds": self.idle_timeout_seconds, "model_path": self.model_path,
            "chat_format": self.chat_format,
        }


def parse_model_configs(raw: Any) -> list[ConfiguredModel]:
    """Keep enabled ``gguf_direct`` entries; malformed ones are logged and skipped."""
    entries: list[tuple[str | None, Any]]
    if isinstance(raw, dict):
        entries = [(str(k), v) for k, v in raw.items()]
    elif isinstance(raw, (list, tuple)):
        entries = [(None, v) for v in raw]
    else:
        return []
    out: list[ConfiguredModel] = []
    for key, entry in entries:
        model = _parse_entry(key, entry)
        if model is not None:
            out.append(model)
    return out


def _parse_entry(key: str | None, entry: Any) -> ConfiguredModel | None:
    if not isinstance(entry, dict):
        log.warning("model_configs entry %r is not a mapping; skipped", key)
        return None
    if entry.get("serving_method") != "gguf_direct" or not entry.get("enabled", True):
        return None
    model_id = entry.get("model_id") or key
    model_path = entry.get("model_path")
    if not model_id or not model_path:
        log.warning("model_configs entry %r lacks model_id or model_path; skipped", key or entry)
        return None
    try:
        return ConfiguredModel(
            model_id=sanitize_id(str(model_id)), model_path=str(model_path),
            display_name=str(entry.get("display_name") or model_id),
            n_ctx=_opt(int, entry.get("n_ctx")), n_gpu_layers=_opt(int, entry.get("n_gpu_layers")),
            n_threads=_opt(int, entry.get("n_threads")),
            estimated_vram_mb=_opt(float, entry.get("estimated_vram_mb")),
            capabilities=[str(c) for c in entry.get("capabilities") or []],
            idle_timeout_seconds=_opt(float, entry.get("idle_timeout_seconds")),
            pinned=_opt(bool, entry.get("pinned")), priority=_opt(int, entry.get("priority")),
            chat_format=_opt(str, entry.get("chat_format")),
        )
    except (TypeError, ValueError) as exc:
        log.warning("model_configs entry %r has a bad value (%s); skipped", model_id, exc)
        return None


def _opt(kind: type, value: Any) -> Any:
    return None if value is None else kind(value)


def parse_load_policy(raw: Any) -> dict[str, str]:
    """model_pref -> model id."""
    if not isinstance(raw, dict):
        return {}
    policy: dict[str, str] = {}
    for pref, target in raw.items():
        if isinstance(target, dict):
            target = target.get("model_id") or target.get("model") or target.get("default")
        if isinstance(target, str) and target:
            policy[str(pref)] = target
    return policy


def resolve_model_path(model_path: str, dirs: list[Path]) -> Path:
    """Absolute paths as given; relative ones against the first model dir that has the file."""
    path = Path(model_path).expanduser()
    if path.is_absolute():
        return path
    for base in dirs:
        candidate = base / path
        if candidate.exists():
            return candidate
    return (dirs[0] / path) if dirs else path
