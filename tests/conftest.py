"""Fixtures shared by every test package.

* ``client`` (module): a native msgpack client with an admin token for the module's ``hub``.
* ``postgres`` (session): one private PostgreSQL 15 cluster for the whole run (``tests/support/postgres.py``,
  fsync off: its durability is not what the tests check) handing out fresh migrated MemoryHub databases;
  tests that request it skip, saying why, only where the PostgreSQL binaries are missing.
"""
from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.postgres import PostgresCluster, TemplateDatabases, missing_reason


@pytest.fixture(scope="module")
def client(hub):
    """A native msgpack client with an admin token for the module's ``hub`` (a HubProcess fixture)."""
    with hub.client() as native:
        yield native


@pytest.fixture(scope="session")
def postgres() -> Iterator[TemplateDatabases]:
    reason = missing_reason()
    if reason:
        pytest.skip(f"no PostgreSQL here: {reason}")
    cluster = PostgresCluster.start_new(fsync=False)
    try:
        yield TemplateDatabases(cluster)
    finally:
        cluster.stop()
