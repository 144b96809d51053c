"""Alembic environment of MemoryHub's SQL schema (``migrations.runner.upgrade_to_head(url, "memory_hub")``)."""
