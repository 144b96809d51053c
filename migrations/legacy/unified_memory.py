"""MemoryOrchestratorService ``unified_memory.db`` -> MemoryHub (all four tables).

Legacy schema (legacy-protocol.md §1.4): ``memories(memory_id PK, content, memory_type, memory_tier,
importance, access_count, last_accessed_at, created_at, expires_at, metadata JSON, tags JSON,
relationships JSON, parent_id)``, ``memory_relationships(id, source_memory_id, target_memory_id,
relationship_type, strength, created_at, updated_at)``, ``context_groups(id INTEGER, name, description,
created_at, updated_at)``, ``memory_group_mappings(id, memory_id, group_id, created_at)``.

Mapping: rows keep their ids (group ids become their decimal text, as the hub's ids are strings);
``metadata`` -> ``meta``; ``updated_at`` = ``last_accessed_at`` or ``created_at``. Legacy SQLite did not
enforce foreign keys, the hub does: a ``parent_id`` naming no memory is cleared (for ``interaction`` rows,
SessionMemoryAgent's, it was the session id and moves to ``session_id``); relationships and group mappings
whose ends are missing are skipped. Embeddings are left empty: MemoryHub's search maintenance embeds rows
without one in the background, and the full-text index is filled by its triggers.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from agents.memory_hub.stores.sql_models import (MEMORY_TIERS, ContextGroup, Memory, MemoryGroupMapping,
                                                 MemoryRelationship)
from migrations.legacy.common import (Report, RowSkipped, TableReport, import_rows, legacy_rows,
                                      open_legacy_sqlite, target_transaction, to_epoch, to_float, to_int, to_json)

TABLES = ("memories", "memory_relationships", "context_groups", "memory_group_mappings")


def import_unified_memory(path: str | Path, database_url: str, *, dry_run: bool = False,
                          overwrite: bool = False) -> Report:
    report = Report("unified-memory", str(path), database_url, dry_run, overwrite)
    with open_legacy_sqlite(path, TABLES) as legacy, target_transaction(database_url, "memory_hub",
                                                                        dry_run) as session:
        memories = legacy_rows(legacy, "memories")
        known = {row["memory_id"] for row in memories if row.get("memory_id")}
        known |= set(session.execute(select(Memory.memory_id)).scalars())
        table = report.table("memories", "memories")
        import_rows(memories, table, lambda row: _memory(row, known, table), session, Memory,
                    lambda row: row.get("memory_id"))
        _import_groups(legacy_rows(legacy, "context_groups"), report, session)
        _import_relationships(legacy_rows(legacy, "memory_relationships"), report, session)
        _import_mappings(legacy_rows(legacy, "memory_group_mappings"), report, session)
    return report


def _memory(row: dict, known: set[str], table: TableReport) -> tuple[dict, dict]:
    memory_id = row.get("memory_id")
    if not memory_id:
        raise RowSkipped("memory_id is empty")
    content = row.get("content")
    if content is None or str(content) == "":
        raise RowSkipped("content is empty")
    tier = row.get("memory_tier") or "short"
    if tier not in MEMORY_TIERS:
        raise RowSkipped(f"memory_tier {tier!r} is not one of {', '.join(MEMORY_TIERS)}")
    accessed = to_epoch(row.get("last_accessed_at"))
    created = to_epoch(row.get("created_at"))
    if created is None:
        created = accessed
        table.notes.append(f"{memory_id}: no created_at, "
                           + ("last_accessed_at used" if created else "import time used"))
    memory_type = row.get("memory_type") or "general"
    parent, session_id = row.get("parent_id") or None, None
    if parent is not None and parent not in known:
        table.notes.append(f"{memory_id}: parent_id {parent!r} names no memory; cleared"
                           + (" (kept as session_id)" if memory_type == "interaction" else ""))
        session_id = parent if memory_type == "interaction" else None
        parent = None
    values: dict[str, Any] = {
        "content": str(content), "memory_type": memory_type, "memory_tier": tier,
        "importance": to_float(row.get("importance"), 0.5, "importance"),
        "access_count": to_int(row.get("access_count"), 0, "access_count"),
        "last_accessed_at": accessed, "expires_at": to_epoch(row.get("expires_at")),
        "meta": _mapping(to_json(row.get("metadata"), {}, "metadata"), "metadata"),
        "tags": _list(to_json(row.get("tags"), [], "tags")),
        "relationships": _mapping(to_json(row.get("relationships"), {}, "relationships"), "relationships"),
        "parent_id": parent,
    }
    if session_id is not None:
        values["session_id"] = session_id
    values.update(times(created, accessed or created))
    return {"memory_id": str(memory_id)}, values


def times(created: float | None, updated: float | None) -> dict[str, float]:
    """Only the times the legacy row had: a missing one takes the model default at insert and is not
    compared on later runs (so a rerun stays ``unchanged``)."""
    out = {}
    if created is not None:
        out["created_at"] = created
    if updated is not None:
        out["updated_at"] = updated
    return out


def _mapping(value: Any, what: str) -> dict:
    if not isinstance(value, dict):
        raise RowSkipped(f"{what} is not a JSON object")
    return value


def _list(value: Any) -> list:
    if not isinstance(value, list):
        raise RowSkipped("tags is not a JSON list")
    return value


def _import_groups(rows: list[dict], report: Report, session: Session) -> None:
    table = report.table("context_groups", "context_groups")

    def convert(row: dict) -> tuple[dict, dict]:
        if row.get("id") is None or not row.get("name"):
            raise RowSkipped("id or name is empty")
        created = to_epoch(row.get("created_at"))
        return {"id": str(row["id"])}, {"name": str(row["name"]), "description": row.get("description"),
                                        **times(created, to_epoch(row.get("updated_at")) or created)}

    import_rows(rows, table, convert, session, ContextGroup, lambda row: row.get("id"))


def _import_relationships(rows: list[dict], report: Report, session: Session) -> None:
    table = report.table("memory_relationships", "memory_relationships")

    def convert(row: dict) -> tuple[dict, dict]:
        source, target, kind = row.get("source_memory_id"), row.get("target_memory_id"), row.get("relationship_type")
        if not source or not target or not kind:
            raise RowSkipped("source, target or relationship_type is empty")
        for end in (source, target):
            if session.get(Memory, end) is None:
                raise RowSkipped(f"memory {end} is not in the hub")
        created = to_epoch(row.get("created_at"))
        return ({"source_memory_id": source, "target_memory_id": target, "relationship_type": kind},
                {"strength": to_float(row.get("strength"), 1.0, "strength"),
                 **times(created, to_epoch(row.get("updated_at")) or created)})

    import_rows(rows, table, convert, session, MemoryRelationship,
                lambda row: f"{row.get('source_memory_id')}->{row.get('target_memory_id')}")


def _import_mappings(rows: list[dict], report: Report, session: Session) -> None:
    table = report.table("memory_group_mappings", "memory_group_mappings")

    def convert(row: dict) -> tuple[dict, dict]:
        memory_id, group = row.get("memory_id"), row.get("group_id")
        if not memory_id or group is None:
            raise RowSkipped("memory_id or group_id is empty")
        if session.get(Memory, memory_id) is None:
            raise RowSkipped(f"memory {memory_id} is not in the hub")
        if session.get(ContextGroup, str(group)) is None:
            raise RowSkipped(f"context group {group} is not in the hub")
        return ({"memory_id": memory_id, "group_id": str(group)},
                times(to_epoch(row.get("created_at")), None))

    import_rows(rows, table, convert, session, MemoryGroupMapping,
                lambda row: f"{row.get('memory_id')}@{row.get('group_id')}")
