"""AgentTrustScorer against a real migrated SQLite: the legacy formula, legacy replies, native actions,
the trust policy and call feeding."""
from __future__ import annotations

import re

import pytest

from agents.memory_hub.handlers.agent_trust_scorer import AgentTrustScorer
from agents.memory_hub.trust import CallFeeder, TrustSettings, TrustStore, legacy_trust_score
from bus.config import ConfigError
from bus.errors import Forbidden
from bus.handler import CallContext, Principal
from bus.settings import from_mapping




@pytest.fixture
def scorer(compose_hub, sql_store):
    parts = compose_hub(sql_store, trust={"legacy_max_step": 1.0})   # the exact legacy formula
    return parts.handler(AgentTrustScorer)


def legacy(scorer: AgentTrustScorer, request, port: int = 7122) -> dict:
    return scorer.handle_legacy(request, port)


def ctx(action: str) -> CallContext:
    return CallContext(agent="AgentTrustScorer", action=action)


# ------------------------------------------------------------------------------------------- formula

@pytest.mark.parametrize("successful, total, response_time, expected", [
    (1, 1, 0.0, 1.0),
    (0, 1, 0.0, 0.3),
    (1, 1, 5.0, 0.7),
    (1, 1, 10.0, 0.7),            # time factor floors at 0
    (1, 2, 2.5, 0.7 * 0.5 + 0.3 * 0.5),
    (3, 4, 1.0, 0.7 * 0.75 + 0.3 * 0.8),
])
def test_legacy_formula_on_known_inputs(successful, total, response_time, expected):
    assert legacy_trust_score(successful, total, response_time) == pytest.approx(expected)


def test_sequence_uses_counts_and_latest_response_time_only(scorer):
    scores = [legacy(scorer, {"action": "log_performance", "model_id": "m", "success": ok,
                              "response_time": rt})["new_trust_score"]
              for ok, rt in ((True, 0.0), (False, 4.0), (True, 1.0), (True, 2.5))]
    assert scores == pytest.approx([1.0, 0.35 + 0.3 * 0.2, 0.7 * 2 / 3 + 0.3 * 0.8, 0.7 * 0.75 + 0.3 * 0.5])
    assert legacy(scorer, {"action": "get_trust_score", "model_id": "m"}) == {
        "status": "success", "trust_score": pytest.approx(0.7 * 0.75 + 0.15)}


# ------------------------------------------------------------------------------------------- legacy

def test_legacy_defaults(scorer):
    assert legacy(scorer, {"action": "get_trust_score", "model_id": "new"}) == {"status": "success",
                                                                                 "trust_score": 0.5}
    reply = legacy(scorer, {"action": "log_performance", "model_id": "fast", "success": True})
    assert reply == {"status": "success", "new_trust_score": 1.0}          # response_time defaults to 0.0
    assert legacy(scorer, {"action": "get_performance_history", "model_id": "nobody"}) == {
        "status": "success", "history": []}


def test_legacy_history_newest_first_with_limit(scorer):
    for i in range(12):
        legacy(scorer, {"action": "log_performance", "model_id": "h", "success": i % 2 == 0,
                        "response_time": float(i), "error_message": f"e{i}"})
    reply = legacy(scorer, {"action": "get_performance_history", "model_id": "h"})
    assert reply["status"] == "success" and len(reply["history"]) == 10      # default limit 10
    assert [row["response_time"] for row in reply["history"]] == [float(i) for i in range(11, 1, -1)]
    first = reply["history"][0]
    assert set(first) == {"success", "response_time", "timestamp"} and first["success"] is False
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(\.\d{6})?", first["timestamp"])
    assert len(legacy(scorer, {"action": "get_performance_history", "model_id": "h", "limit": 3})["history"]) == 3
    assert len(legacy(scorer, {"action": "get_performance_history", "model_id": "h", "limit": "2"})["history"]) == 2
    assert len(legacy(scorer, {"action": "get_performance_history", "model_id": "h", "limit": -1})["history"]) == 12


def test_legacy_5626_port_is_the_same_agent(scorer):
    legacy(scorer, {"action": "log_performance", "model_id": "p", "success": False}, port=7122)
    assert legacy(scorer, {"action": "get_trust_score", "model_id": "p"}, port=5626)["trust_score"] == \
        pytest.approx(0.3)


@pytest.mark.parametrize("request_, fragment", [
    ({"action": "log_performance", "success": True}, "'model_id'"),
    ({"action": "get_trust_score"}, "'model_id'"),
    ({"action": "get_performance_history"}, "'model_id'"),
    ({"action": "log_performance", "model_id": "m"}, "'success'"),
    ({"action": "log_performance", "model_id": "m", "success": True, "response_time": "fast"}, "response_time"),
    ({"action": "log_performance", "model_id": {"a": 1}, "success": True}, "model_id"),
    ({"action": "get_trust_score", "model_id": "x" * 200}, "too long"),
    ({"action": "get_performance_history", "model_id": "m", "limit": "many"}, "limit"),
    ({"action": "dance"}, "Unknown action: dance"),
])
def test_legacy_errors(scorer, request_, fragment):
    reply = legacy(scorer, request_)
    assert reply["status"] == "error" and fragment in reply["message"] and set(reply) == {"status", "message"}


def test_legacy_health(scorer):
    reply = legacy(scorer, {"action": "health_check"})
    assert reply["status"] == "ok" and reply["service"] == "AgentTrustScorer" and reply["additional_info"] == {}
    assert reply["uptime"] >= 0 and reply["ready"] is True
    assert scorer.legacy_health(5627)["service"] == "AgentTrustScorer"


def test_error_message_is_stored(scorer, sql_store):
    scorer.log_performance("err", False, 1.0, "model crashed")
    assert TrustStore(sql_store).get_history("err")[0]["error_message"] == "model crashed"


# ------------------------------------------------------------------------------------------- native

def test_native_actions(scorer):
    assert scorer.log_performance_action({"model_id": "n", "success": True, "response_time": 2.5,
                                          "error_message": None}, ctx("log_performance")) == {
        "model_id": "n", "new_trust_score": pytest.approx(0.85)}
    record = scorer.get_trust_score_action({"model_id": "n"}, ctx("get_trust_score"))
    assert record["trust_score"] == pytest.approx(0.85) and record["total_interactions"] == 1
    assert record["successful_interactions"] == 1 and record["last_updated"] > 0
    route = scorer.get_trust_action({"user_id": "n"}, ctx("get_trust"))
    assert route["user_id"] == "n" and route["trust_score"] == pytest.approx(0.85)
    assert scorer.get_trust_action({"user_id": "unknown"}, ctx("get_trust")) == {
        "user_id": "unknown", "trust_score": 0.5, "total_interactions": 0, "successful_interactions": 0,
        "last_updated": None}
    history = scorer.get_performance_history_action({"model_id": "n", "limit": 5}, ctx("h"))["history"]
    assert history[0]["success"] is True and history[0]["response_time"] == 2.5


# ------------------------------------------------------------------------------------------- policy, feeding

def test_policy_gates_actions_on_the_callers_score(compose_hub, sql_store):
    parts = compose_hub(sql_store, trust={"min_score": {"CacheManager.flush": 0.6, "KnowledgeBase.*": 0.9},
                                          "exempt_subjects": ["root"]})
    scorer = parts.handler(AgentTrustScorer)
    policy = parts.trust_policy
    assert policy is scorer.policy
    caller = Principal("agent-7")
    policy(caller, "CacheManager", "get")                       # not gated
    with pytest.raises(Forbidden, match=r"0\.500 .*0\.600"):
        policy(caller, "CacheManager", "flush")                 # unknown caller: 0.5 < 0.6
    policy(Principal("root"), "KnowledgeBase", "add_fact")      # exempt
    scorer.log_performance("agent-7", True, 0.0)                # -> 1.0 (and the cached 0.5 is invalidated)
    policy(caller, "CacheManager", "flush")
    with pytest.raises(Forbidden):
        scorer.log_performance("agent-7", False, 5.0)           # -> 0.35
        policy(caller, "KnowledgeBase", "search_facts")


@pytest.mark.parametrize("bad", [{"min_score": {"NoDot": 0.5}}, {"min_score": {"A.b": 2}},
                                 {"min_score": {"A.b": True}}])
def test_policy_refuses_bad_settings(bad):
    with pytest.raises(ConfigError, match="trust.min_score"):
        from_mapping(TrustSettings, bad, "trust")


def test_feeder_scores_callers_from_their_calls(compose_hub, sql_store):
    feeder = compose_hub(sql_store, trust={"feed_calls": True}).call_feeder
    caller = Principal("chatty")
    for outcome in ("ok", "ok", "not_found", "bad_request"):
        feeder(caller, "MemoryClient", "get", outcome, 0.01)
    feeder(None, "MemoryClient", "get", "ok")
    feeder(Principal("anonymous"), "MemoryClient", "get", "ok")
    assert feeder.flush()
    store = TrustStore(sql_store)
    assert store.get_trust_score("chatty") == pytest.approx(0.7 * 3 / 4 + 0.3)
    assert store.get_history("chatty")[0]["error_message"] == "MemoryClient.get: bad_request"
    assert store.get_record("anonymous") is None


def test_feeder_is_a_no_op_unless_configured(compose_hub, sql_store):
    feeder = compose_hub(sql_store).call_feeder
    feeder(Principal("quiet"), "A", "b", "ok")
    assert feeder.flush() and TrustStore(sql_store).get_record("quiet") is None


def test_feeder_drops_oldest_when_full(tmp_path, sql_store):
    feeder = CallFeeder(TrustStore(sql_store), TrustSettings(feed_calls=True, feed_queue=2))
    feeder._thread = object()          # do not start the writer: the queue only fills
    for i in range(5):
        feeder(Principal(f"p{i}"), "A", "b", "ok")
    assert feeder.dropped == 3 and feeder._queue.qsize() == 2
