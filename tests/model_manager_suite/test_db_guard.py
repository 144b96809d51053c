"""A database outage in the model suite's SQL users becomes the retryable `unavailable` error."""
from __future__ import annotations

import pytest
from sqlalchemy import create_engine, text

from agents.model_manager_suite.store import db_guard
from bus.errors import Unavailable


def test_operational_error_becomes_unavailable(tmp_path):
    engine = create_engine(f"sqlite:///{tmp_path / 'x.db'}")
    with pytest.raises(Unavailable) as err, db_guard("evaluation database"), engine.connect() as conn:
        conn.execute(text("SELECT * FROM no_such_table"))
    assert err.value.retryable and err.value.message.startswith("evaluation database unavailable:")
    with pytest.raises(ValueError), db_guard("model database"):
        raise ValueError("other errors pass through")
