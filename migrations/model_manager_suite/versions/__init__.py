"""Alembic revisions of ModelManagerSuite (``0001_initial``; later revisions add predictive-loader and evaluation tables)."""
