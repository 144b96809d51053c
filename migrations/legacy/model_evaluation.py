"""ModelEvaluationFramework ``model_evaluation.db`` -> ModelManagerSuite's evaluation tables.

Legacy schema (legacy-protocol.md §3.4): ``performance_metrics(metric_id PK, agent_name, metric_name,
value, timestamp, context JSON)`` and ``model_evaluation_scores(evaluation_id PK, model_name, cycle_id,
trust_score, accuracy, f1_score, avg_latency_ms, evaluation_timestamp, comparison_data JSON)``; timestamps
are ISO text.

The target tables of the same names are declared by ``agents/model_manager_suite/eval_models.py``.
Columns are matched by name and each value converted to the target column's type (JSON text decoded, ISO
times to epoch floats or datetimes), so the importer follows that module's models; a legacy column the
hub does not have is reported, not guessed.
"""
from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from migrations.legacy.common import (ImportRefused, Report, RowSkipped, TableReport, attribute_names,
                                      convert_for_column, import_rows, legacy_rows, model_for_table,
                                      open_legacy_sqlite, target_transaction)

TABLES = {"performance_metrics": "metric_id", "model_evaluation_scores": "evaluation_id"}
EVAL_MODULE = "agents.model_manager_suite.eval_models"


def evaluation_models() -> dict[str, type]:
    """The hub's mapped classes for the two tables (``ImportRefused`` when this version has none)."""
    try:
        module = importlib.import_module(EVAL_MODULE)
    except ImportError as exc:
        raise ImportRefused(f"{EVAL_MODULE} is not available in this version: {exc}") from exc
    base = getattr(module, "Base", None)
    if base is None:
        from agents.model_manager_suite.sql_models import Base as base
    models = {table: model_for_table(base, table) for table in TABLES}
    missing = [table for table, model in models.items() if model is None]
    if missing:
        raise ImportRefused(f"ModelManagerSuite has no model for table(s) {', '.join(missing)}")
    return models  # type: ignore[return-value]


def import_model_evaluation(path: str | Path, database_url: str, *, dry_run: bool = False,
                            overwrite: bool = False) -> Report:
    models = evaluation_models()
    report = Report("model-evaluation", str(path), database_url, dry_run, overwrite)
    with open_legacy_sqlite(path, TABLES) as legacy, target_transaction(database_url, "model_manager_suite",
                                                                        dry_run) as session:
        for table, key_column in TABLES.items():
            rows = legacy_rows(legacy, table)
            model = models[table]
            target = report.table(table, model.__table__.name)
            _note_unmapped(rows, model, target)
            import_rows(rows, target, _converter(model, key_column), session, model,
                        lambda row, k=key_column: row.get(k))
    return report


def _note_unmapped(rows: list[dict], model: type, report: TableReport) -> None:
    if rows:
        unmapped = sorted(set(rows[0]) - set(attribute_names(model)))
        if unmapped:
            report.notes.append(f"legacy columns without a hub column, not imported: {', '.join(unmapped)}")


def _converter(model: type, key_column: str):
    attributes = attribute_names(model)
    columns = {column.name: column for column in model.__table__.columns}
    if key_column not in attributes:
        raise ImportRefused(f"{model.__table__.name} has no column {key_column}")

    def convert(row: dict) -> tuple[dict, dict]:
        if row.get(key_column) in (None, ""):
            raise RowSkipped(f"{key_column} is empty")
        values: dict[str, Any] = {}
        for name, value in row.items():
            if name not in attributes or name == key_column:
                continue
            converted = convert_for_column(columns[name], value, name)
            if converted is None and not columns[name].nullable:
                raise RowSkipped(f"{name} is empty")
            values[attributes[name]] = converted
        return {attributes[key_column]: str(row[key_column])}, values

    return convert
