"""Typed settings: frozen dataclasses, one per section, built from YAML/env mappings and checked at load.

A section is a ``@dataclass(frozen=True)`` whose fields carry their defaults; ranges and choices go in
``setting(...)`` metadata, cross-field rules in ``__post_init__`` (raise ``SettingError(key, reason)``).
``from_mapping(cls, data)`` builds one from a mapping: unknown keys, wrong types and out-of-range values
raise ``ConfigError`` naming the dotted key and the reason, so a daemon can exit 2 before it opens anything.

Supported field types: ``bool``, ``int``, ``float`` (ints accepted), ``str``, ``X | None``, ``tuple[X, ...]``
(YAML lists), ``dict[str, X]``, ``Literal[...]``, ``Any`` and nested section dataclasses.
Example::

    @dataclass(frozen=True)
    class CacheSettings:
        ttl_s: float = setting(300.0, minimum=0.0)
        mode: Literal["lru", "fifo"] = "lru"

    cache = from_mapping(CacheSettings, {"ttl_s": 60}, path="cache_manager")
"""
from __future__ import annotations

import copy
import dataclasses
import os
import types
import typing
from pathlib import Path
from typing import Any, Literal, TypeVar, Union, get_args, get_origin
from collections.abc import Mapping

import yaml

T = TypeVar("T")
_MISSING: Any = dataclasses.MISSING


class ConfigError(ValueError):
    """A setting that cannot be used: ``key`` (dotted, may be empty) and ``reason``; str() is ``key: reason``."""

    def __init__(self, reason: str, key: str = ""):
        super().__init__(f"{key}: {reason}" if key else reason)
        self.key = key
        self.reason = reason


class SettingError(ValueError):
    """Raised by a section's ``__post_init__``: ``key`` is relative to the section."""

    def __init__(self, key: str, reason: str):
        super().__init__(f"{key}: {reason}")
        self.key = key
        self.reason = reason


def setting(default: Any = _MISSING, *, default_factory: Any = _MISSING, minimum: float | None = None,
            maximum: float | None = None, choices: tuple[Any, ...] | None = None, doc: str = "") -> Any:
    """A dataclass field with a range (inclusive), or a set of allowed values, checked by ``from_mapping``."""
    metadata = {"minimum": minimum, "maximum": maximum, "choices": choices, "doc": doc}
    if default_factory is not _MISSING:
        return dataclasses.field(default_factory=default_factory, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def from_mapping(cls: type[T], data: Mapping[str, Any] | None, path: str = "") -> T:
    """Build section ``cls`` from ``data`` (None = all defaults); ``path`` prefixes key names in errors."""
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ConfigError(f"must be a mapping, got {type(data).__name__}", path or "<root>")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(map(str, data)) - set(fields))
    if unknown:
        raise ConfigError("unknown config key", _join(path, unknown[0]))
    values: dict[str, Any] = {}
    for name, value in data.items():
        key = _join(path, str(name))
        values[name] = _check_range(fields[name], key, _convert(hints[name], value, key))
    for name, spec in fields.items():
        if name in values:
            continue
        if spec.default is _MISSING and spec.default_factory is _MISSING:
            raise ConfigError("is required", _join(path, name))
    try:
        return cls(**values)
    except SettingError as exc:
        raise ConfigError(exc.reason, _join(path, exc.key)) from None


def load(cls: type[T], layers: list[Mapping[str, Any]], yaml_path: str | os.PathLike[str] | None = None,
         env: Mapping[str, str] | None = None, env_map: Mapping[str, tuple[str, ...]] | None = None,
         overrides: Mapping[str, Any] | None = None) -> T:
    """Settings ``cls`` from, in order: ``layers`` (e.g. a hub's ports), the YAML file, the environment
    variables named in ``env_map`` (variable -> dotted path), then ``overrides``; checked once, here."""
    raw: dict[str, Any] = {}
    for layer in layers:
        deep_merge(raw, layer)
    if yaml_path:
        deep_merge(raw, read_yaml(Path(yaml_path)))
    for variable, dotted in (env_map or {}).items():
        value = (env or {}).get(variable)
        if value in (None, ""):
            continue
        annotation = field_type(cls, dotted)
        if annotation is None:
            raise ConfigError(f"unknown config key (from environment variable {variable})", ".".join(dotted))
        node = raw
        for name in dotted[:-1]:
            node = node.setdefault(name, {})
        node[dotted[-1]] = parse_env_value(str(value), annotation, f"{'.'.join(dotted)} ({variable})")
    if overrides:
        deep_merge(raw, overrides)
    return from_mapping(cls, raw)


def read_yaml(path: Path) -> dict[str, Any]:
    if not path.exists():
        raise ConfigError(f"config file not found: {path}")
    try:
        loaded = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: invalid YAML: {exc}") from exc
    if not isinstance(loaded, dict):
        raise ConfigError(f"{path}: top level must be a mapping")
    return loaded


def deep_merge(base: dict[str, Any], new: Mapping[str, Any]) -> None:
    """Merge raw (unchecked) mappings: nested mappings merge, anything else replaces."""
    for key, value in new.items():
        if isinstance(value, Mapping) and isinstance(base.get(key), dict):
            deep_merge(base[key], value)
        else:
            base[key] = copy.deepcopy(value)


def to_mapping(section: Any) -> Any:
    """Plain dicts/lists of a section tree (for --print-config and logging)."""
    if dataclasses.is_dataclass(section) and not isinstance(section, type):
        return {f.name: to_mapping(getattr(section, f.name)) for f in dataclasses.fields(section)}
    if isinstance(section, (list, tuple)):
        return [to_mapping(item) for item in section]
    if isinstance(section, Mapping):
        return {key: to_mapping(value) for key, value in section.items()}
    return section


def field_type(cls: type, dotted: tuple[str, ...]) -> Any:
    """The annotation of a nested field, e.g. ``("storage", "redis_url")``; None when the path is unknown."""
    annotation: Any = cls
    for name in dotted:
        if not _is_section(annotation):
            return None
        hints = typing.get_type_hints(annotation)
        if name not in hints:
            return None
        annotation = hints[name]
    return annotation


def parse_env_value(raw: str, annotation: Any, key: str) -> Any:
    """An environment string as the field's type wants it (lists are ':'-separated)."""
    annotation = _strip_optional(annotation)
    try:
        if annotation is bool:
            return _env_bool(raw)
        if annotation is int:
            return int(raw)
        if annotation is float:
            return float(raw)
    except ValueError:
        raise ConfigError(f"must be {annotation.__name__}, got {raw!r} (from the environment)", key) from None
    if get_origin(annotation) in (tuple, list):
        return [part for part in raw.split(":") if part]
    return raw


TRUE_TEXTS, FALSE_TEXTS = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


def _env_bool(raw: str) -> bool:
    # a typo must not turn a switch off in silence (HUB_AUTH_REQUIRED=ture would disable authentication)
    text = raw.strip().lower()
    if text not in TRUE_TEXTS + FALSE_TEXTS:
        raise ValueError(raw)
    return text in TRUE_TEXTS


def _convert(annotation: Any, value: Any, key: str) -> Any:
    if annotation is Any:
        return value
    origin = get_origin(annotation)
    if origin in (Union, types.UnionType):
        options = get_args(annotation)
        if value is None and type(None) in options:
            return None
        real = [option for option in options if option is not type(None)]
        if len(real) == 1:
            return _convert(real[0], value, key)
        for option in real:
            try:
                return _convert(option, value, key)
            except ConfigError:
                continue
        raise ConfigError(f"has the wrong type ({type(value).__name__})", key)
    if origin is Literal:
        allowed = get_args(annotation)
        if value not in allowed:
            raise ConfigError(f"must be one of {', '.join(map(repr, allowed))}, got {value!r}", key)
        return value
    if origin in (tuple, list):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"must be a list, got {type(value).__name__}", key)
        item_type = get_args(annotation)[0] if get_args(annotation) else Any
        return tuple(_convert(item_type, item, f"{key}[{index}]") for index, item in enumerate(value))
    if origin is dict or annotation is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(f"must be a mapping, got {type(value).__name__}", key)
        value_type = get_args(annotation)[1] if get_args(annotation) else Any
        return {str(name): _convert(value_type, item, _join(key, str(name))) for name, item in value.items()}
    if _is_section(annotation):
        if dataclasses.is_dataclass(value) and isinstance(value, annotation):
            return value
        return from_mapping(annotation, value, key)
    return _scalar(annotation, value, key)


def _scalar(annotation: Any, value: Any, key: str) -> Any:
    if annotation is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    bool_as_number = isinstance(value, bool) and annotation in (int, float)    # bool is an int subclass
    if bool_as_number or not isinstance(value, annotation):
        raise ConfigError(f"must be {annotation.__name__}, got {type(value).__name__}", key)
    return value


def _check_range(spec: dataclasses.Field[Any], key: str, value: Any) -> Any:
    minimum, maximum = spec.metadata.get("minimum"), spec.metadata.get("maximum")
    choices = spec.metadata.get("choices")
    if value is None:
        return value
    if minimum is not None and value < minimum:
        raise ConfigError(f"must be >= {minimum}, got {value!r}", key)
    if maximum is not None and value > maximum:
        raise ConfigError(f"must be <= {maximum}, got {value!r}", key)
    if choices is not None and value not in choices:
        raise ConfigError(f"must be one of {', '.join(map(repr, choices))}, got {value!r}", key)
    return value


def _strip_optional(annotation: Any) -> Any:
    if get_origin(annotation) in (Union, types.UnionType):
        real = [option for option in get_args(annotation) if option is not type(None)]
        if len(real) == 1:
            return real[0]
    return annotation


def _is_section(annotation: Any) -> bool:
    return isinstance(annotation, type) and dataclasses.is_dataclass(annotation)


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key
