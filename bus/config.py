"""Settings: built-in defaults, then a YAML file, then environment overrides; unknown keys are an error.

Each hub composes its defaults from ``COMMON_DEFAULTS`` plus the sections its components declare
(``DEFAULTS`` dicts next to the code that uses them) and calls ``load_settings``. The result is a plain
nested dict; components receive their own section, never the environment.

Types are checked against the defaults: a YAML value must have the default's type (ints are accepted
where floats are expected; ``null`` defaults accept anything). A section whose default is ``{}`` is
free-form (e.g. per-agent overrides).
"""
from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any, Mapping

import yaml


class ConfigError(ValueError):
    pass


COMMON_DEFAULTS: dict[str, Any] = {
    "hub": {
        "host": "127.0.0.1",          # bind address of the native, HTTP and events ports
        "native_port": 0,             # set by each hub
        "http_port": 0,
        "events_port": 0,
        "workers": 8,                 # worker threads for blocking handlers
        "queue_limit": 2000,          # pending requests beyond which the reply is `busy`
        "max_frame_bytes": 16 * 1024 * 1024,
        "default_deadline_ms": 60000,
        "drain_timeout_s": 10.0,
        "watchdog": True,
        "idempotency_window_s": 86400.0,   # a repeated idempotency_key answers its first result this long
        "idempotency_running_s": 600.0,    # a key still `running` after this is taken over (its hub died)
    },
    "legacy": {
        "enabled": True,
        "host": "127.0.0.1",          # the legacy agents bound *; PC2/MainPC host profiles set 0.0.0.0
        "allow": [],                  # peer IP allow-list for legacy ports (ZAP); empty = everyone who can reach the bind
        "agents": {},                 # per agent: {enabled: bool, ports: [...], health_ports: [...]}
    },
    "auth": {
        "required": True,
        "algorithm": "HS256",
        "secret_file": "",            # default: <data_dir>/jwt.secret (mode 0600, created on first start)
        "secret": None,               # from env HUB_JWT_SECRET; never in YAML committed to git
        "issuer": "voice-hubs",
        "token_ttl_s": 86400,
        "leeway_s": 5,
        "audience": "",               # this hub's `aud` (default: the hub's name); tokens must name it or all-hubs
        "mint_audiences": [],         # `aud` of tokens this hub mints (default: its own audience only)
        "max_token_lifetime_s": 604800,  # tokens living longer (exp - iat) are refused; minted ones are capped
        "revocation_feeds": [],       # events endpoints of hubs whose `auth.revoked` events this hub obeys
        "revocation_feed_server_key": None,  # z85 public key when those events ports require CURVE
    },
    "curve": {
        "enabled": False,
        "server_secret_key": None,    # z85 strings; see README "Security"
        "server_public_key": None,
        "allowed_client_keys": [],
    },
    "logging": {"level": "info", "json": True},
    "storage": {"data_dir": "./var", "redis_url": None, "database_url": None},
}

# environment variable -> settings path; applied after the YAML file
COMMON_ENV: dict[str, tuple[str, ...]] = {
    "HUB_DATA_DIR": ("storage", "data_dir"),
    "REDIS_URL": ("storage", "redis_url"),
    "DATABASE_URL": ("storage", "database_url"),
    "HUB_JWT_SECRET": ("auth", "secret"),
    "HUB_LOG_LEVEL": ("logging", "level"),
    "HUB_AUTH_REQUIRED": ("auth", "required"),
}


def merge_defaults(*parts: Mapping[str, Any]) -> dict[str, Any]:
    """Combine default trees; a key defined twice with different values is a programming error."""
    out: dict[str, Any] = {}
    for part in parts:
        _merge_into(out, copy.deepcopy(dict(part)), path=(), strict=False)
    return out


def load_settings(defaults: Mapping[str, Any], path: str | os.PathLike | None = None,
                  env: Mapping[str, str] | None = None, env_map: Mapping[str, tuple[str, ...]] | None = None,
                  overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    settings = copy.deepcopy(dict(defaults))
    if path:
        file_path = Path(path)
        if not file_path.exists():
            raise ConfigError(f"config file not found: {file_path}")
        try:
            loaded = yaml.safe_load(file_path.read_text()) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"{file_path}: invalid YAML: {exc}") from exc
        if not isinstance(loaded, dict):
            raise ConfigError(f"{file_path}: top level must be a mapping")
        _merge_into(settings, loaded, path=(), strict=True)
    for var, key_path in {**COMMON_ENV, **(env_map or {})}.items():
        value = (env or {}).get(var)
        if value not in (None, ""):
            _set_path(settings, key_path, _parse_env_value(value, _get_path(defaults, key_path)))
    if overrides:
        _merge_into(settings, copy.deepcopy(dict(overrides)), path=(), strict=True)
    return settings


def port_offset(env: Mapping[str, str]) -> int:
    raw = env.get("PORT_OFFSET", "0") or "0"
    try:
        return int(raw)
    except ValueError as exc:
        raise ConfigError(f"PORT_OFFSET must be an integer, got {raw!r}") from exc


def _merge_into(base: dict, new: Mapping[str, Any], path: tuple[str, ...], strict: bool) -> None:
    for key, value in new.items():
        here = path + (str(key),)
        if key not in base:
            if strict and not _free_form(base, path):
                raise ConfigError(f"unknown config key '{'.'.join(here)}'")
            base[key] = value
            continue
        current = base[key]
        if isinstance(current, dict) and current and isinstance(value, dict):
            _merge_into(current, value, here, strict)
        elif strict:
            base[key] = _check_type(here, current, value)
        else:
            base[key] = value


def _free_form(base: dict, path: tuple[str, ...]) -> bool:
    return not base and bool(path)


def _check_type(path: tuple[str, ...], default: Any, value: Any) -> Any:
    if default is None or value is None:
        return value
    if isinstance(default, bool):
        ok = isinstance(value, bool)
    elif isinstance(default, float):
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        value = float(value) if ok else value
    elif isinstance(default, int):
        ok = isinstance(value, int) and not isinstance(value, bool)
    else:
        ok = isinstance(value, type(default))
    if not ok:
        raise ConfigError(f"config key '{'.'.join(path)}' must be {type(default).__name__}, "
                          f"got {type(value).__name__}")
    return value


def _get_path(tree: Mapping[str, Any], path: tuple[str, ...]) -> Any:
    node: Any = tree
    for key in path:
        if not isinstance(node, Mapping) or key not in node:
            return None
        node = node[key]
    return node


def _set_path(tree: dict, path: tuple[str, ...], value: Any) -> None:
    node = tree
    for key in path[:-1]:
        node = node.setdefault(key, {})
    node[path[-1]] = value


def _parse_env_value(raw: str, default: Any) -> Any:
    if isinstance(default, bool):
        return raw.strip().lower() in ("1", "true", "yes", "on")
    if isinstance(default, int):
        return int(raw)
    if isinstance(default, float):
        return float(raw)
    if isinstance(default, list):
        return [part for part in raw.split(":") if part]
    return raw
