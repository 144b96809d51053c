"""UnifiedMemoryReasoningAgent JSON stores -> MemoryHub SQL.

Legacy files (legacy-protocol.md §2.1), found in one directory (or named one by one):

* ``memory_store.json``: ``{"sessions": {sid: [{timestamp, type, content, metadata?}, ...]},
  "summaries": {sid: {...}}}`` -> ``interactions`` (session_id, interaction_type = type, content, metadata,
  timestamp; natural key: all four) and ``session_summaries`` (session_id -> summary; ``updated_at`` from
  the summary's ``last_updated``).
* ``error_patterns.json``: ``{"patterns": {error_type: {pattern, solution, last_seen, occurrence_count}},
  "history": [...]}`` -> ``error_patterns`` (key error_type, as the legacy dict). The history list only
  repeated each ``add_error_pattern`` call; it has no table and is counted in the notes.
* ``digital_twin_store.json``: ``{user_id: twin_data}`` -> ``digital_twins``.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from agents.memory_hub.stores.sql_models import DigitalTwin, ErrorPattern, Interaction, SessionSummary
from migrations.legacy.common import (ImportRefused, Report, RowSkipped, import_rows, read_json_file,
                                      target_transaction, to_epoch, to_int)

FILES = {"memory_store": "memory_store.json", "error_patterns": "error_patterns.json",
         "twin_store": "digital_twin_store.json"}


def locate(path: str | Path, **explicit: str | None) -> dict[str, Path | None]:
    """The three files: ``path`` is their directory (or one of them); ``explicit`` names override."""
    base = Path(path)
    directory = base if base.is_dir() else base.parent
    found: dict[str, Path | None] = {}
    for key, name in FILES.items():
        candidate = Path(explicit[key]) if explicit.get(key) else directory / name
        found[key] = candidate if candidate.is_file() else None
    if base.is_file() and base not in found.values():
        raise ImportRefused(f"{base}: not one of {', '.join(FILES.values())}")
    if not any(found.values()):
        raise ImportRefused(f"none of {', '.join(FILES.values())} found in {directory}")
    return found


def import_reasoning_json(path: str | Path, database_url: str, *, dry_run: bool = False, overwrite: bool = False,
                          **explicit: str | None) -> Report:
    files = locate(path, **explicit)
    report = Report("reasoning-json", str(path), database_url, dry_run, overwrite)
    for key, file in files.items():
        if file is None:
            report.notes.append(f"{FILES[key]} not found: nothing imported from it")
    with target_transaction(database_url, "memory_hub", dry_run) as session:
        if files["memory_store"]:
            _memory_store(read_json_file(files["memory_store"]), files["memory_store"].name, report, session)
        if files["error_patterns"]:
            _error_patterns(read_json_file(files["error_patterns"]), files["error_patterns"].name, report,
                            session)
        if files["twin_store"]:
            _twins(read_json_file(files["twin_store"]), files["twin_store"].name, report, session)
    return report


def _object(data: Any, what: str) -> dict:
    if not isinstance(data, dict):
        raise ImportRefused(f"{what}: expected a JSON object at the top level")
    return data


def _memory_store(data: Any, name: str, report: Report, session: Any) -> None:
    data = _object(data, name)
    sessions = data.get("sessions") or {}
    rows = [{"session_id": sid, **(entry if isinstance(entry, dict) else {"_bad": entry})}
            for sid, entries in (sessions.items() if isinstance(sessions, dict) else [])
            for entry in (entries if isinstance(entries, list) else [entries])]
    table = report.table(f"{name} sessions", "interactions")
    import_rows(rows, table, _interaction, session, Interaction,
                lambda row: f"{row.get('session_id')}@{row.get('timestamp')}")
    summaries = data.get("summaries") or {}
    table = report.table(f"{name} summaries", "session_summaries")
    import_rows([{"session_id": sid, "summary": s} for sid, s in summaries.items()], table, _summary, session,
                SessionSummary, lambda row: row.get("session_id"))


def _interaction(row: dict) -> tuple[dict, dict]:
    if "_bad" in row:
        raise RowSkipped("entry is not a JSON object")
    if not row.get("type") or row.get("content") in (None, ""):
        raise RowSkipped("type or content is empty")
    timestamp = to_epoch(row.get("timestamp"))
    if timestamp is None:
        raise RowSkipped("timestamp is empty")
    content = row["content"] if isinstance(row["content"], str) else json.dumps(row["content"])
    metadata = row.get("metadata") or {}
    if not isinstance(metadata, dict):
        raise RowSkipped("metadata is not a JSON object")
    key = {"session_id": str(row["session_id"]), "timestamp": timestamp, "interaction_type": str(row["type"]),
           "content": content}
    return key, {"meta": metadata}


def _summary(row: dict) -> tuple[dict, dict]:
    summary = row["summary"]
    if not isinstance(summary, dict):
        raise RowSkipped("summary is not a JSON object")
    values: dict[str, Any] = {"summary": summary}
    updated = to_epoch(summary.get("last_updated"))
    if updated is not None:
        values["updated_at"] = updated
    return {"session_id": str(row["session_id"])}, values


def _error_patterns(data: Any, name: str, report: Report, session: Any) -> None:
    data = _object(data, name)
    patterns = data.get("patterns") or {}
    table = report.table(f"{name} patterns", "error_patterns")
    history = data.get("history") or []
    if history:
        table.notes.append(f"{len(history)} history entries not imported (they repeat the patterns' additions)")
    rows = [{"error_type": t, **(p if isinstance(p, dict) else {"_bad": p})} for t, p in patterns.items()]
    import_rows(rows, table, _pattern, session, ErrorPattern, lambda row: row.get("error_type"))


def _pattern(row: dict) -> tuple[dict, dict]:
    if "_bad" in row:
        raise RowSkipped("pattern entry is not a JSON object")
    if not row.get("pattern"):
        raise RowSkipped("pattern is empty")
    values: dict[str, Any] = {"pattern": str(row["pattern"]), "solution": row.get("solution"),
                              "occurrences": to_int(row.get("occurrence_count"), 0, "occurrence_count"),
                              "last_seen": to_epoch(row.get("last_seen"))}
    return {"error_type": str(row["error_type"])}, values


def _twins(data: Any, name: str, report: Report, session: Any) -> None:
    data = _object(data, name)
    table = report.table(name, "digital_twins")

    def convert(row: dict) -> tuple[dict, dict]:
        if not row["user_id"]:
            raise RowSkipped("user_id is empty")
        if not isinstance(row["twin"], dict):
            raise RowSkipped("twin data is not a JSON object")
        return {"user_id": str(row["user_id"])}, {"twin_data": row["twin"]}

    import_rows([{"user_id": uid, "twin": twin} for uid, twin in data.items()], table, convert, session,
                DigitalTwin, lambda row: row.get("user_id"))
