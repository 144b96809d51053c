"""Alembic revisions of MemoryHub (``0001_initial``, ``0002_fts``, ...)."""
