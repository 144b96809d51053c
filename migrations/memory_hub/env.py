"""Alembic environment of MemoryHub (see migrations/env_common.py). The full-text tables (``memories_fts*``,
an FTS5 virtual table and its shadow tables, created by revision 0002) and PostgreSQL's generated ``search_tsv``
column (revision 0005_postgres_search) are invisible to autogenerate."""
from agents.memory_hub.stores.sql_models import Base
from migrations.env_common import run

run(Base.metadata, "alembic_version_memory_hub", ("memories_fts",), compare_server_default=True,
    ignored_columns=("search_tsv",))
