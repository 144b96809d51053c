"""Tests of the MemoryHub storage layer (SQL, Alembic, Redis, embedded redis-server)."""
