"""Alembic environment of ModelManagerSuite (see migrations/env_common.py); every table module listed in
``sql_models.TABLE_MODULES`` is part of the target metadata."""
from agents.model_manager_suite.sql_models import full_metadata
from migrations.env_common import run

run(full_metadata(), "alembic_version_model_manager_suite", ())
