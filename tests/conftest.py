"""Fixtures shared by every test package."""
from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def client(hub):
    """A native msgpack client with an admin token for the module's ``hub`` (a HubProcess fixture)."""
    with hub.client() as native:
        yield native
