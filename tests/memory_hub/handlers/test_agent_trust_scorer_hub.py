"""AgentTrustScorer in a running MemoryHub: every legacy action on 7122 and 5626, the health ports, native
and route forms, bad input, and the trust policy configured in YAML."""
from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest

from bus.errors import BadRequest, Forbidden
from tests.support.hubproc import HubProcess

CONFIG = {"trust": {"min_score": {"CacheManager.*": 0.6}, "legacy_max_step": 1.0}}   # the exact legacy formula


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    with HubProcess("memory_hub", tmp_path_factory.mktemp("trust-hub"), config=CONFIG) as running:
        yield running


@pytest.mark.parametrize("port", [7122, 5626])
def test_every_legacy_action(hub, port):
    model = f"legacy-{port}"
    assert hub.legacy_request(port, {"action": "get_trust_score", "model_id": model}) == {
        "status": "success", "trust_score": 0.5}
    reply = hub.legacy_request(port, {"action": "log_performance", "model_id": model, "success": True,
                                      "response_time": 1.0, "error_message": ""})
    assert reply == {"status": "success", "new_trust_score": pytest.approx(0.7 + 0.3 * 0.8)}
    hub.legacy_request(port, {"action": "log_performance", "model_id": model, "success": False})
    history = hub.legacy_request(port, {"action": "get_performance_history", "model_id": model, "limit": 5})
    assert history["status"] == "success" and [h["success"] for h in history["history"]] == [False, True]
    health = hub.legacy_request(port, {"action": "health_check"})
    assert health["service"] == "AgentTrustScorer" and health["status"] == "ok"


@pytest.mark.parametrize("port", [8122, 5627])
def test_health_ports(hub, port):
    assert hub.legacy_request(port, "anything")["service"] == "AgentTrustScorer"


def test_legacy_bad_input(hub):
    assert hub.legacy_request(7122, {"action": "log_performance", "success": True}) == {
        "status": "error", "message": "Missing required field: 'model_id'"}
    assert hub.legacy_request(7122, {"action": "log_performance", "model_id": "m", "success": True,
                                     "response_time": "slow"})["status"] == "error"
    assert hub.legacy_request(7122, {"action": "zap"}) == {"status": "error", "message": "Unknown action: zap"}


def test_native_and_route_forms(hub):
    with hub.client() as client:
        assert client.call("AgentTrustScorer", "log_performance", {"model_id": "nat", "success": True})[
            "new_trust_score"] == 1.0
        assert client.call("AgentTrustScorer", "get_trust_score", {"model_id": "nat"})["total_interactions"] == 1
        assert client.route("GET", "/trust/nat")["trust_score"] == 1.0
        assert client.call("AgentTrustScorer", "get_performance_history", {"model_id": "nat"})["history"][0][
            "success"] is True
        for args in ({"model_id": "x"}, {"model_id": "x", "success": "yes"},
                     {"model_id": "x", "success": True, "response_time": -1}):
            with pytest.raises(BadRequest):
                client.call("AgentTrustScorer", "log_performance", args)
    req = urllib.request.Request(hub.http_url + "/trust/nat", headers={"Authorization": f"Bearer {hub.token()}"})
    with urllib.request.urlopen(req, timeout=30) as resp:
        assert json.loads(resp.read())["user_id"] == "nat"


def test_trust_policy_from_config(hub):
    """CacheManager.* needs 0.6: an unknown caller (0.5) is forbidden until its score rises."""
    token = hub.token(subject="newcomer")
    with hub.client(token=token) as client:
        with pytest.raises(Forbidden, match="trust score"):
            client.route("GET", "/cache/anything")
        hub.legacy_request(7122, {"action": "log_performance", "model_id": "newcomer", "success": True})
        try:
            client.route("GET", "/cache/anything")
        except Forbidden:
            pytest.fail("a caller whose score rose to 1.0 is still forbidden")
        except Exception:
            pass                                       # not found etc.: past the policy
        assert client.call("AgentTrustScorer", "get_trust_score", {"model_id": "newcomer"})["trust_score"] == 1.0
