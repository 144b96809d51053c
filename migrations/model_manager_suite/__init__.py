"""Alembic environment of ModelManagerSuite's SQL schema.

Run by ``migrations.runner.upgrade_to_head(url, "model_manager_suite")``.
"""
