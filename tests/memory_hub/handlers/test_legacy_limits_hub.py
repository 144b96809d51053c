"""Legacy ports under limits in a running MemoryHub (issue 18, points 3 and 6): per-peer windows for
registrations, logins and trust writes, and the bounded step of a legacy trust write. The peer address comes
from the legacy socket itself (the bus passes it to ``handle_legacy_from``)."""
from __future__ import annotations

import uuid

import pytest

from tests.support.hubproc import HubProcess

CONFIG = {"auth_agent": {"register_max_per_peer": 3, "login_max_per_peer": 5, "login_max_per_user": 100},
          "trust": {"legacy_writes_per_peer": 8}}


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    with HubProcess("memory_hub", tmp_path_factory.mktemp("legacy-limits"), config=CONFIG) as running:
        yield running


def test_legacy_registrations_are_limited_per_peer(hub):
    replies = [hub.legacy_request(7116, {"action": "register", "user_id": f"flood-{i}", "password": "long-enough"})
               for i in range(6)]
    assert [r["status"] for r in replies[:3]] == ["success"] * 3
    assert replies[3:] == [{"status": "error", "message": "Too many registrations, retry later"}] * 3


def test_legacy_logins_as_random_users_are_limited_per_peer(hub):
    replies = [hub.legacy_request(7116, {"action": "login", "user_id": uuid.uuid4().hex, "password": "guess-guess"})
               for _ in range(8)]
    assert replies[:5] == [{"status": "error", "message": "Invalid user_id or password"}] * 5
    assert replies[5:] == [{"status": "error", "message": "Too many login attempts, retry later"}] * 3


def test_a_legacy_trust_write_moves_a_score_by_a_bounded_step(hub):
    reply = hub.legacy_request(7122, {"action": "log_performance", "model_id": "victim", "success": False,
                                      "response_time": 5.0})
    assert reply == {"status": "success", "new_trust_score": pytest.approx(0.4)}     # formula says 0.0
    reply = hub.legacy_request(7122, {"action": "log_performance", "model_id": "climber", "success": True})
    assert reply == {"status": "success", "new_trust_score": pytest.approx(0.6)}     # formula says 1.0
    with hub.client() as admin:                                                     # native: the formula
        assert admin.call("AgentTrustScorer", "log_performance", {"model_id": "native", "success": True})[
            "new_trust_score"] == pytest.approx(1.0)


def test_legacy_trust_writes_are_limited_per_peer(hub):
    replies = [hub.legacy_request(5626, {"action": "log_performance", "model_id": "spam", "success": False})
               for _ in range(10)]
    assert all(r["status"] == "success" for r in replies[:6])      # 2 writes were spent by the test above
    assert replies[-1] == {"status": "error", "message": "Too many trust updates, retry later"}
    assert hub.legacy_request(7122, {"action": "get_trust_score", "model_id": "spam"})["status"] == "success"
