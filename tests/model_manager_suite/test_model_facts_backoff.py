"""FactsSender's back-off while MemoryHub does not answer: a new fact does not cut it short."""
from __future__ import annotations

import socket
from pathlib import Path

import sqlalchemy as sa

from agents.model_manager_suite.model_facts import OUTBOX, FactsOutbox, FactsSender, ModelFactsSettings


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_a_new_fact_during_a_back_off_waits_for_its_end(tmp_path: Path) -> None:
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'facts.db'}")
    OUTBOX.create(engine)
    outbox = FactsOutbox(engine)
    settings = ModelFactsSettings(memory_hub_endpoint=f"tcp://127.0.0.1:{closed_port()}", token="a-token",
                                  timeout_s=0.2, backoff_initial_s=30.0, backoff_max_s=60.0)
    sender = FactsSender(outbox, settings)
    outbox.add("models:state:a", {"loaded": True})
    assert sender._pass() == 30.0                      # MemoryHub does not answer: back off 30 s
    outbox.add("models:state:b", {"loaded": False})    # wakes the sender
    assert 0 < sender._pass() <= 30.0                  # the rest of the back-off, without another attempt
    assert [row.attempts for row in outbox.pending(10)] == [1, 0]
    engine.dispose()
