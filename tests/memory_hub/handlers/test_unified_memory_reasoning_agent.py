"""UnifiedMemoryReasoningAgent against a real migrated SQLite (no hub process): digital twins, interactions
and session summaries, error patterns, the "ok"/"reason" legacy vocabulary, native actions, bad input.
"""
from __future__ import annotations

import pytest

from agents.memory_hub.handlers.unified_memory_reasoning_agent import UnifiedMemoryReasoningAgent
from agents.memory_hub.reasoning import ReasoningSettings, ReasoningStore, categorize_error, fit_tokens, summarize
from agents.memory_hub.stores.sql import SqlStore
from bus.errors import BadRequest, NotFound, Unavailable
from bus.handler import CallContext

TYPES = ("code", "user_query", "system_response", "error")


@pytest.fixture
def agent(sql_store) -> UnifiedMemoryReasoningAgent:
    return UnifiedMemoryReasoningAgent(ReasoningSettings(), sql_store)


def legacy(agent: UnifiedMemoryReasoningAgent, request) -> dict:
    return agent.handle_legacy(request, 7105)


def ctx(action: str) -> CallContext:
    return CallContext(agent="UnifiedMemoryReasoningAgent", action=action)


def interact(agent, session_id: str, kind: str, content: str) -> dict:
    return legacy(agent, {"action": "add_interaction", "session_id": session_id, "interaction_type": kind,
                          "content": content})


# ------------------------------------------------------------------------------------------- twins

def test_twin_lifecycle_legacy(agent):
    assert legacy(agent, {"action": "get_twin", "user_id": "ana"}) == {"status": "ok", "twin": {}}
    assert legacy(agent, {"action": "update_twin", "user_id": "ana", "twin_data": {"likes": ["tea"]}}) == \
        {"status": "ok"}
    assert legacy(agent, {"action": "get_twin", "user_id": "ana"}) == {"status": "ok", "twin": {"likes": ["tea"]}}
    assert legacy(agent, {"action": "update_twin", "user_id": "ana", "twin_data": {"likes": ["coffee"]}}) == \
        {"status": "ok"}
    assert legacy(agent, {"action": "get_twin", "user_id": "ana"})["twin"] == {"likes": ["coffee"]}
    assert legacy(agent, {"action": "delete_twin", "user_id": "ana"}) == {"status": "ok"}
    assert legacy(agent, {"action": "delete_twin", "user_id": "ana"}) == {"status": "error",
                                                                         "reason": "User not found"}


def test_twin_user_id_defaults_to_default(agent):
    legacy(agent, {"action": "update_twin", "twin_data": {"name": "house"}})
    assert legacy(agent, {"action": "get_twin"})["twin"] == {"name": "house"}
    assert agent.get_twin({"user_id": "default"}, ctx("get_twin"))["twin"] == {"name": "house"}


def test_twins_persist_across_stores(sql_url):
    first = SqlStore(sql_url)
    ReasoningStore(first).update_twin("bo", {"age": 7})
    first.close()
    second = SqlStore(sql_url)
    try:
        assert ReasoningStore(second).get_twin("bo") == {"age": 7}
    finally:
        second.close()


# ------------------------------------------------------------------------------------------- interactions

def test_new_session_context(agent):
    reply = legacy(agent, {"action": "get_context", "session_id": "fresh"})
    assert reply["status"] == "ok"
    assert reply["context"]["context"] == "New session: fresh" and reply["context"]["session_id"] == "fresh"
    assert isinstance(reply["context"]["last_updated"], float)


def test_history_is_capped_at_50_newest_first_with_a_summary_of_all(agent):
    for i in range(51):
        assert interact(agent, "s1", TYPES[i % 4], f"entry {i} database timeout") == {"status": "ok"}
    history = agent.get_interactions({"session_id": "s1", "limit": 100}, ctx("get_interactions"))["interactions"]
    assert len(history) == 50
    assert history[0]["content"] == "entry 50 database timeout" and history[-1]["content"] == "entry 1 database timeout"
    summary = legacy(agent, {"action": "get_context", "session_id": "s1"})["context"]
    assert summary["code_context"] == "Code Summary:\nTotal snippets: 13\nDetected domains: database operations\n"
    assert summary["conversation_summary"].startswith("Conversation Summary:\nTotal exchanges: 13\n\n"
                                                      "Recent exchanges:\n"
                                                      "User: entry 49 database timeout...\n")
    assert len(summary["errors_encountered"]) == 12                   # counted over all 51 before the cut
    assert summary["errors_encountered"][0] == {"type": "timeout", "message": "entry 47 database timeout"}


def test_session_with_few_interactions_gets_a_computed_summary(agent):
    interact(agent, "s2", "user_query", "what is the weather")
    interact(agent, "s2", "system_response", "sunny")
    interact(agent, "s2", "error", "permission denied on /tmp")
    summary = legacy(agent, {"action": "get_context", "session_id": "s2"})["context"]
    assert "Total exchanges: 1" in summary["conversation_summary"]
    assert "User: what is the weather...\nSystem: sunny...\n" in summary["conversation_summary"]
    assert summary["errors_encountered"] == [{"type": "permission", "message": "permission denied on /tmp"}]
    assert "code_context" not in summary


def test_max_tokens_cuts_the_text_parts(agent):
    for i in range(8):
        interact(agent, "s3", "user_query", f"question number {i} " * 5)
        interact(agent, "s3", "system_response", f"answer number {i} " * 5)
    full = legacy(agent, {"action": "get_context", "session_id": "s3"})["context"]
    cut = legacy(agent, {"action": "get_context", "session_id": "s3", "max_tokens": 60})["context"]
    assert len(cut["conversation_summary"]) < len(full["conversation_summary"])
    assert cut["errors_encountered"] == full["errors_encountered"]


def test_summary_helpers():
    entries = [{"type": "code", "content": "import flask\n@app.route('/')"},
               {"type": "code", "content": "threading.Thread(target=f)"}, {"type": "note", "content": "ignored"}]
    summary = summarize(entries)
    assert summary["code_context"] == ("Code Summary:\nTotal snippets: 2\n"
                                       "Detected domains: web functionality, concurrency features\n")
    assert summary["errors_encountered"] == [] and "conversation_summary" not in summary
    assert categorize_error("Connection reset") == {"type": "connection", "message": "Connection reset"}
    assert categorize_error("boom")["type"] == "other"
    assert fit_tokens({"a": 1}, 1, 0.8, 4) == {"a": 1}


# ------------------------------------------------------------------------------------------- error patterns

def test_error_patterns_match_and_count(agent):
    assert legacy(agent, {"action": "add_error_pattern", "error_type": "conn", "pattern": r"connection (refused|reset)",
                          "solution": "restart the service"}) == {"status": "ok"}
    assert legacy(agent, {"action": "add_error_pattern", "error_type": "disk", "pattern": "no space left"}) == \
        {"status": "ok"}
    assert legacy(agent, {"action": "get_error_solution", "error_message": "ERROR: Connection Refused (111)"}) == \
        {"status": "ok", "solution": "restart the service"}
    assert legacy(agent, {"action": "get_error_solution", "error_message": "no space left on device"}) == \
        {"status": "ok", "solution": None}                                   # matched, no solution given
    assert legacy(agent, {"action": "get_error_solution", "error_message": "all fine"}) == \
        {"status": "ok", "solution": None}
    patterns = {p["error_type"]: p for p in agent.list_error_patterns({}, ctx("list"))["patterns"]}
    assert patterns["conn"]["occurrences"] == 2 and patterns["disk"]["occurrences"] == 2
    legacy(agent, {"action": "add_error_pattern", "error_type": "conn", "pattern": "refused", "solution": "s2"})
    patterns = {p["error_type"]: p for p in agent.list_error_patterns({}, ctx("list"))["patterns"]}
    assert patterns["conn"] == {**patterns["conn"], "pattern": "refused", "solution": "s2", "occurrences": 1}
    assert len(patterns) == 2


def test_invalid_pattern_is_refused(agent):
    reply = legacy(agent, {"action": "add_error_pattern", "error_type": "bad", "pattern": "(unclosed"})
    assert reply["status"] == "error" and reply["reason"].startswith("Invalid pattern")
    with pytest.raises(BadRequest) as err:
        agent.add_error_pattern({"error_type": "bad", "pattern": "[", "solution": None}, ctx("add_error_pattern"))
    assert err.value.details["field"] == "pattern"


# ------------------------------------------------------------------------------------------- bad input

@pytest.mark.parametrize("request_, reason", [
    ({"action": "update_twin", "user_id": "a"}, "No twin data provided"),
    ({"action": "update_twin", "user_id": "a", "twin_data": {}}, "No twin data provided"),
    ({"action": "update_twin", "user_id": 5, "twin_data": {"a": 1}}, "Invalid user_id"),
    ({"action": "get_twin", "user_id": ["a"]}, "Invalid user_id"),
    ({"action": "add_interaction", "session_id": "s", "interaction_type": "code"}, "Missing required fields"),
    ({"action": "add_interaction", "session_id": "s", "content": "c"}, "Missing required fields"),
    ({"action": "add_interaction", "session_id": "s", "interaction_type": "code", "content": {"a": 1}},
     "Invalid content"),
    ({"action": "add_interaction", "session_id": "s", "interaction_type": "code", "content": "c", "metadata": "m"},
     "Invalid metadata"),
    ({"action": "add_interaction", "session_id": "s" * 200, "interaction_type": "code", "content": "c"},
     "Invalid session_id"),
    ({"action": "get_context"}, "Missing session_id"),
    ({"action": "get_context", "session_id": "s", "max_tokens": "lots"}, "Invalid max_tokens"),
    ({"action": "add_error_pattern", "error_type": "x"}, "Missing required fields"),
    ({"action": "add_error_pattern", "error_type": "x", "pattern": 5}, "Invalid pattern"),
    ({"action": "get_error_solution"}, "Missing error_message"),
    ({"action": "get_error_solution", "error_message": ["x"]}, "Invalid error_message"),
    ({"action": "nope"}, "Unknown action"),
    ({}, "Unknown action"),
])
def test_bad_legacy_input(agent, request_, reason):
    assert legacy(agent, request_) == {"status": "error", "reason": reason}


def test_health_reply_and_counters(agent):
    legacy(agent, {"action": "update_twin", "user_id": "u", "twin_data": {"a": 1}})
    legacy(agent, {"action": "update_twin", "user_id": "u"})
    legacy(agent, {"action": "get_twin", "user_id": "u"})
    interact(agent, "s", "code", "x")
    legacy(agent, {"action": "add_error_pattern", "error_type": "x", "pattern": "x"})
    reply = legacy(agent, {"action": "health_check"})
    assert reply["status"] == "ok" and reply["service"] == "unified_memory_reasoning_agent"
    assert reply["request_count"] == 5 and reply["update_count"] == 2 and reply["get_count"] == 1
    assert reply["successful_updates"] == 1 and reply["failed_updates"] == 1
    assert reply["health_check_count"] == 1 and isinstance(reply["last_request_time"], float)
    assert (reply["total_twins"], reply["total_sessions"], reply["total_error_patterns"]) == (1, 1, 1)
    for field in ("ready", "initialized", "message", "timestamp", "uptime", "active_threads", "error_count",
                  "delete_count"):
        assert field in reply
    assert agent.legacy_health(7106)["service"] == "unified_memory_reasoning_agent"
    assert legacy(agent, ["x"]) == {"status": "error", "reason": "Invalid request format"}


# ------------------------------------------------------------------------------------------- native

def test_native_actions(agent):
    assert agent.update_twin({"user_id": "u", "twin_data": {"a": 1}}, ctx("update_twin")) == {"user_id": "u"}
    assert agent.get_twin({"user_id": "u"}, ctx("get_twin")) == {"user_id": "u", "twin": {"a": 1}}
    assert agent.delete_twin({"user_id": "u"}, ctx("delete_twin"))["deleted"] is True
    with pytest.raises(NotFound):
        agent.get_twin({"user_id": "u"}, ctx("get_twin"))
    with pytest.raises(NotFound):
        agent.delete_twin({"user_id": "u"}, ctx("delete_twin"))
    added = agent.add_interaction({"session_id": "s", "interaction_type": "user_query", "content": "hi",
                                   "metadata": {"lang": "en"}}, ctx("add_interaction"))
    assert added["session_id"] == "s" and added["summarized"] is False
    assert agent.get_interactions({"session_id": "s", "limit": 5}, ctx("i"))["interactions"][0]["metadata"] == \
        {"lang": "en"}
    summary = agent.session_context({"session_id": "s", "max_tokens": None}, ctx("session_context"))
    assert summary["context"]["conversation_summary"].startswith("Conversation Summary:")
    agent.add_error_pattern({"error_type": "t", "pattern": "timed? ?out", "solution": "retry"}, ctx("a"))
    found = agent.get_error_solution({"error_message": "request timed out"}, ctx("g"))
    assert found["solution"] == "retry" and found["match"]["occurrences"] == 2
    assert agent.get_error_solution({"error_message": "fine"}, ctx("g")) == {"solution": None, "match": None}


def test_search_actions_without_search_are_unavailable_but_check_the_query_first(agent):
    with pytest.raises(BadRequest) as err:
        agent.semantic_search({"query": "   ", "k": None, "mode": "hybrid", "filters": None}, ctx("semantic_search"))
    assert err.value.details["field"] == "query"
    with pytest.raises(BadRequest):
        agent.semantic_search({"query": "x", "k": "ten", "mode": "hybrid", "filters": None}, ctx("semantic_search"))
    with pytest.raises(Unavailable):
        agent.semantic_search({"query": "tea", "k": "3", "mode": "vector", "filters": None}, ctx("semantic_search"))
    with pytest.raises(Unavailable):
        agent.get_context({"query": "tea", "token_budget": None, "k": None, "mode": "hybrid", "filters": None},
                          ctx("get_context"))


def test_native_schemas_name_the_field():
    from schemas.memory_hub import unified_memory_reasoning_agent as schema

    cases = [(schema.UPDATE_TWIN, {"twin_data": []}, "twin_data"), (schema.ADD_INTERACTION, {"session_id": "s"},
                                                                    "interaction_type"),
             (schema.SEMANTIC_SEARCH, {"query": "q", "mode": "fuzzy"}, "mode"),
             (schema.SEMANTIC_SEARCH, {}, "query"), (schema.GET_CONTEXT, {"query": "q", "token_budget": 0},
                                                     "token_budget")]
    for fields, args, field in cases:
        with pytest.raises(BadRequest) as err:
            fields.validate(args)
        assert err.value.details["field"] == field
