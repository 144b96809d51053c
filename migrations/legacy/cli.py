"""``hubctl migrate SOURCE PATH``: arguments and dispatch (importers are imported when used).

The target is found the way the hub finds its stores: ``--database-url`` / ``--redis-url``, else the
hub profile given with ``--config`` (and the environment: DATABASE_URL, REDIS_URL, HUB_DATA_DIR), else the
data directory (``--data-dir``, default ``./var/<hub>``) with its SQLite file / embedded redis-server.
Exit 0 after a report (skipped rows are listed, they are not failures); 2 when the source cannot be read.
"""
from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bus.daemon import LoadedSettings

SOURCES = {
    "unified-memory": "memory_hub",
    "trust-scores": "memory_hub",
    "reasoning-json": "memory_hub",
    "cache-redis": "memory_hub",
    "model-evaluation": "model_manager_suite",
}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("source", choices=sorted(SOURCES), help="what to import (see migrations/legacy/__init__.py)")
    p.add_argument("path", help="legacy file / directory; for cache-redis the legacy Redis URL "
                                "(redis://host:6379/0)")
    p.add_argument("--config", default=None, help="the hub's YAML profile (storage settings)")
    p.add_argument("--data-dir", default=None, help="the hub's data directory")
    p.add_argument("--database-url", default=None, help="the hub's SQLAlchemy URL")
    p.add_argument("--redis-url", default=None, help="the hub's Redis (cache-redis)")
    p.add_argument("--cache-type", action="append", default=[], help="extra legacy cache type (repeatable)")
    p.add_argument("--memory-store", default=None, help="memory_store.json (reasoning-json)")
    p.add_argument("--error-patterns", default=None, help="error_patterns.json (reasoning-json)")
    p.add_argument("--twin-store", default=None, help="digital_twin_store.json (reasoning-json)")
    p.add_argument("--dry-run", action="store_true", help="count what would change; write nothing")
    p.add_argument("--overwrite", action="store_true", help="replace hub rows that differ from the legacy ones "
                                                            "(the legacy agent was still serving them)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")


def hub_settings(hub: str, config: str | None, env: dict[str, str]) -> LoadedSettings:
    """The effective settings of ``hub`` exactly as its daemon computes them."""
    from bus.daemon import settings_for

    spec = _spec(hub)
    return settings_for(spec, argparse.Namespace(config=config, data_dir=None, log_level=None), env)


def _spec(hub: str) -> Any:
    if hub == "memory_hub":
        from agents.memory_hub.hub import SPEC
    else:
        from agents.model_manager_suite.hub import SPEC
    return SPEC


def database_url(hub: str, settings: LoadedSettings, args: argparse.Namespace) -> str:
    if args.database_url:
        return str(args.database_url)
    storage = settings.common.storage
    if storage.database_url and not args.data_dir:
        return storage.database_url
    data_dir = Path(args.data_dir or storage.data_dir)
    if hub == "memory_hub":
        from agents.memory_hub.stores.sql import default_database_url
    else:
        from agents.model_manager_suite.store import default_database_url
    return default_database_url(data_dir)


def run_from_args(args: argparse.Namespace) -> int:
    hub = SOURCES[args.source]
    settings = hub_settings(hub, args.config, dict(os.environ))
    report = _run(args, hub, settings)
    print(json.dumps(report.to_dict(), indent=2) if args.json else report.render())
    return 0


def _run(args: argparse.Namespace, hub: str, settings: LoadedSettings) -> Any:
    if args.source == "cache-redis":
        from migrations.legacy.cache_redis import import_cache_redis

        storage = settings.common.storage
        return import_cache_redis(args.path, args.redis_url or storage.redis_url,
                                  data_dir=args.data_dir or storage.data_dir, cache_types=args.cache_type,
                                  cache_settings=settings.hub.cache_manager,
                                  dry_run=args.dry_run, overwrite=args.overwrite)
    url = database_url(hub, settings, args)
    if args.source == "unified-memory":
        from migrations.legacy.unified_memory import import_unified_memory
        return import_unified_memory(args.path, url, dry_run=args.dry_run, overwrite=args.overwrite)
    if args.source == "trust-scores":
        from migrations.legacy.trust_scores import import_trust_scores
        return import_trust_scores(args.path, url, dry_run=args.dry_run, overwrite=args.overwrite)
    if args.source == "reasoning-json":
        from migrations.legacy.reasoning_json import import_reasoning_json
        return import_reasoning_json(args.path, url, dry_run=args.dry_run, overwrite=args.overwrite,
                                     memory_store=args.memory_store,
                                     error_patterns=args.error_patterns, twin_store=args.twin_store)
    from migrations.legacy.model_evaluation import import_model_evaluation
    return import_model_evaluation(args.path, url, dry_run=args.dry_run, overwrite=args.overwrite)
