"""AgentTrustScorer ``agent_trust_scores.db`` -> MemoryHub ``trust_scores`` and ``performance_logs``.

Legacy schema (legacy-protocol.md §2.8): ``model_scores(model_id PK, trust_score REAL DEFAULT 0.5,
total_interactions, successful_interactions, last_updated TIMESTAMP)``, ``performance_logs(id, model_id,
success BOOLEAN, response_time REAL, error_message, timestamp TIMESTAMP)``; the TIMESTAMP columns hold the
text sqlite3 wrote for ``datetime.now()`` (local time), converted to epoch seconds.

Keys: ``model_id`` for scores; for logs, whose ids are generated, the natural key (model_id, timestamp,
success, response_time, error_message). Legacy ``log_performance`` never wrote ``error_message`` (NULL);
it is kept as NULL.
"""
from __future__ import annotations

from pathlib import Path

from agents.memory_hub.stores.sql_models import PerformanceLog, TrustScore
from migrations.legacy.common import (Report, RowSkipped, import_rows, legacy_rows, open_legacy_sqlite,
                                      target_transaction, to_bool, to_epoch, to_float, to_int)

TABLES = ("model_scores", "performance_logs")


def import_trust_scores(path: str | Path, database_url: str, *, dry_run: bool = False,
                        overwrite: bool = False) -> Report:
    report = Report("trust-scores", str(path), database_url, dry_run, overwrite)
    with open_legacy_sqlite(path, TABLES) as legacy, target_transaction(database_url, "memory_hub",
                                                                        dry_run) as session:
        scores = report.table("model_scores", "trust_scores")
        import_rows(legacy_rows(legacy, "model_scores"), scores, _score, session, TrustScore,
                    lambda row: row.get("model_id"))
        logs = report.table("performance_logs", "performance_logs")
        import_rows(legacy_rows(legacy, "performance_logs"), logs, _log, session, PerformanceLog,
                    lambda row: f"id {row.get('id')}")
    return report


def _score(row: dict) -> tuple[dict, dict]:
    if not row.get("model_id"):
        raise RowSkipped("model_id is empty")
    total = to_int(row.get("total_interactions"), 0, "total_interactions")
    successful = to_int(row.get("successful_interactions"), 0, "successful_interactions")
    if total < 0 or successful < 0 or successful > total:
        raise RowSkipped(f"interaction counts {successful}/{total} are inconsistent")
    values = {"trust_score": to_float(row.get("trust_score"), 0.5, "trust_score"),
              "total_interactions": total, "successful_interactions": successful}
    updated = to_epoch(row.get("last_updated"))
    if updated is not None:
        values["last_updated"] = updated
    return {"model_id": str(row["model_id"])}, values


def _log(row: dict) -> tuple[dict, dict]:
    if not row.get("model_id"):
        raise RowSkipped("model_id is empty")
    timestamp = to_epoch(row.get("timestamp"))
    if timestamp is None:
        raise RowSkipped("timestamp is empty")
    key = {"model_id": str(row["model_id"]), "timestamp": timestamp, "success": to_bool(row.get("success")),
           "response_time": to_float(row.get("response_time"), 0.0, "response_time"),
           "error_message": row.get("error_message") or None}
    return key, {}
