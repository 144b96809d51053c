"""bus.legacy.LegacyAdapter: one legacy dispatch for every agent (lookup, field checks, vocabulary, errors, counts)."""
from __future__ import annotations

import json
from collections import Counter

import pytest

from bus.errors import BadRequest, NotFound, Unavailable
from bus.handler import Handler
from bus.legacy import (BASE_AGENT, LegacyAction, LegacyAdapter, LegacyCall, LegacyInputError, LegacyTable,
                        LegacyVocabulary, decode_legacy)

MESSAGE = LegacyVocabulary()


def raiser(exc: Exception):
    def act(request: dict) -> dict:
        raise exc
    return act


TABLE = LegacyTable({
    "echo": lambda request: {"status": "success", "echo": request.get("value")},
    "missing": raiser(NotFound("no such thing")),
    "refused": raiser(LegacyInputError("topic is required.")),
    "crash": raiser(RuntimeError("boom")),
    "typed": LegacyAction(lambda request: {"status": "success", "id": request["model_id"]},
                          required=("model_id",), fields={"model_id": str, "limit": int}),
    "ping": lambda _request: {"status": "ok", "health": True},
})


def answer(request, vocabulary: LegacyVocabulary = MESSAGE, table: LegacyTable = TABLE) -> dict:
    return LegacyAdapter("Agent", vocabulary).handle(request, table)


# -- lookup ----------------------------------------------------------------------------------------
def test_calls_the_declared_method_with_the_request():
    assert answer({"action": "echo", "value": 7}) == {"status": "success", "echo": 7}


def test_health_actions_are_table_entries_like_any_other():
    assert answer({"action": "ping"}) == {"status": "ok", "health": True}
    assert answer({"action": "health"}) == {"status": "error", "message": "Unknown action: health"}


@pytest.mark.parametrize("request_, shown", [({"action": "nope"}, "nope"), ({}, "None"), ({"action": None}, "None"),
                                             ({"action": ["echo"]}, "['echo']"), ({"action": 5}, "5"),
                                             ({"action": {"a": 1}}, "{'a': 1}")])
def test_unknown_or_non_string_action(request_, shown):
    assert answer(request_) == {"status": "error", "message": f"Unknown action: {shown}"}


# -- unknown action wording per vocabulary ---------------------------------------------------------
def test_missing_and_null_action_read_as_the_agent_read_them():
    blank = LegacyVocabulary(missing_action="", null_action="")
    assert answer({}, blank) == {"status": "error", "message": "Unknown action: "}
    assert answer({"action": None}, blank) == {"status": "error", "message": "Unknown action: "}
    read_with_default = LegacyVocabulary(missing_action="")        # request.get("action", "")
    assert answer({}, read_with_default) == {"status": "error", "message": "Unknown action: "}
    assert answer({"action": None}, read_with_default) == {"status": "error", "message": "Unknown action: None"}


def test_unknown_action_text_key_and_status_are_the_agents():
    assert answer({"action": "x"}, LegacyVocabulary(key="reason", unknown_action="Unknown action")) == {
        "status": "error", "reason": "Unknown action"}
    assert answer({"action": "x"}, BASE_AGENT) == {"status": "error", "error": "Unknown action: x"}
    assert answer({"action": "x"}, LegacyVocabulary(status="ERROR", unknown_action="Unknown command: {action}")) == {
        "status": "ERROR", "message": "Unknown command: x"}
    assert list(answer({"action": "x"})) == ["status", "message"]          # key order as the legacy replies


@pytest.mark.parametrize("request_, name", [([1, 2], "list"), ("ping", "str"), (3, "int"), (None, "NoneType")])
def test_non_object_request(request_, name):
    assert answer(request_) == {"status": "error", "message": "Invalid request format"}
    no_get = LegacyVocabulary(not_an_object="'{type}' object has no attribute 'get'", not_an_object_key="error")
    assert answer(request_, no_get) == {"status": "error", "error": f"'{name}' object has no attribute 'get'"}
    assert answer(request_, BASE_AGENT) == {"status": "error", "error": "Unknown action: None"}


def test_a_table_may_answer_non_objects_itself():
    table = LegacyTable({}, not_an_object=lambda request: {"status": "ERROR", "got": type(request).__name__})
    assert answer([1], table=table) == {"status": "ERROR", "got": "list"}


def test_undecodable_requests_use_the_vocabulary():
    assert decode_legacy(b"{nope") == (None, {"status": "error", "error": "Invalid JSON request"})
    assert decode_legacy(b"\xff\xfe") == (None, {"status": "error", "error": "Invalid UTF-8 request"})
    assert decode_legacy(b'{"action": "x"}') == ({"action": "x"}, None)
    worded = LegacyVocabulary(invalid_json="bad json", undecodable_key="message")
    assert decode_legacy(b"[", worded) == (None, {"status": "error", "message": "bad json"})


def test_without_action_takes_requests_with_a_falsy_action():
    table = LegacyTable({"echo": TABLE.actions["echo"]}, without_action=lambda request: {"status": "fallback"})
    for request in ({}, {"action": ""}, {"action": None}, {"action": 0}, {"action": []}):
        assert answer(request, table=table) == {"status": "fallback"}
    assert answer({"action": "nope"}, table=table) == {"status": "error", "message": "Unknown action: nope"}


# -- field checks ----------------------------------------------------------------------------------
def test_declared_fields_are_checked_before_the_call():
    assert answer({"action": "typed", "model_id": "m"}) == {"status": "success", "id": "m"}
    for missing in ({"action": "typed"}, {"action": "typed", "model_id": None}, {"action": "typed", "model_id": ""}):
        assert answer(missing) == {"status": "error", "message": "Missing model_id parameter"}
    assert answer({"action": "typed", "model_id": 5}) == {"status": "error", "message": "Invalid model_id parameter"}
    assert answer({"action": "typed", "model_id": "m", "limit": "3"}) == {
        "status": "error", "message": "Invalid limit parameter"}


def test_bool_is_not_an_int_unless_declared():
    assert answer({"action": "typed", "model_id": "m", "limit": True}) == {
        "status": "error", "message": "Invalid limit parameter"}
    action = LegacyAction(lambda request: {"ok": True}, fields={"flag": (bool, int)})
    assert answer({"action": "a", "flag": True}, table=LegacyTable({"a": action})) == {"ok": True}


def test_field_check_wording_is_the_agents():
    worded = LegacyVocabulary(key="error", missing_field="{field} required", mistyped_field="{field} required")
    assert answer({"action": "typed"}, worded) == {"status": "error", "error": "model_id required"}
    assert answer({"action": "typed", "model_id": []}, worded) == {"status": "error", "error": "model_id required"}


# -- errors ----------------------------------------------------------------------------------------
def test_hub_errors_and_input_errors_are_answered_in_the_vocabulary():
    assert answer({"action": "missing"}) == {"status": "error", "message": "no such thing"}
    assert answer({"action": "refused"}) == {"status": "error", "message": "topic is required."}
    assert answer({"action": "missing"}, BASE_AGENT) == {"status": "error", "error": "no such thing"}


def test_declared_error_renderers_win_in_order():
    table = LegacyTable({"down": raiser(Unavailable("store down")), "bad": raiser(BadRequest("bad field"))},
                        errors=((Unavailable, lambda _exc: {"status": "error", "message": "Redis is not available"}),
                                (BadRequest, lambda exc: {"status": "error", "reason": exc.message})))
    assert answer({"action": "down"}, table=table) == {"status": "error", "message": "Redis is not available"}
    assert answer({"action": "bad"}, table=table) == {"status": "error", "reason": "bad field"}


def test_internal_errors_propagate_to_the_bus():
    with pytest.raises(RuntimeError, match="boom"):
        answer({"action": "crash"})


def test_internal_error_reply_of_an_agent_that_answered_every_failure():
    table = LegacyTable({"crash": raiser(RuntimeError("boom"))},
                        errors=((Exception, lambda exc: {"status": "ERROR", "error_message": str(exc)}),))
    assert answer({"action": "crash"}, table=table) == {"status": "ERROR", "error_message": "boom"}


# -- counts ----------------------------------------------------------------------------------------
def counted(adapter: LegacyAdapter) -> Counter[tuple[str, str]]:
    """The adapter's outcomes per (action, outcome), as an observer sees them."""
    counts: Counter[tuple[str, str]] = Counter()
    adapter.observers.append(lambda _agent, action, outcome: counts.update([(action, outcome)]))
    return counts


def test_outcomes_are_counted_per_action():
    adapter = LegacyAdapter("Agent", MESSAGE)
    counts = counted(adapter)
    for request in ({"action": "echo"}, {"action": "echo"}, {"action": "missing"}, {"action": "refused"},
                    {"action": "typed"}, {"action": "nope"}, {"action": "other"}, [1]):
        adapter.handle(request, TABLE)
    with pytest.raises(RuntimeError):
        adapter.handle({"action": "crash"}, TABLE)
    assert counts == {("echo", "ok"): 2, ("missing", "error"): 1, ("refused", "bad_input"): 1,
                                ("typed", "bad_input"): 1, ("(unknown)", "unknown_action"): 2,
                                ("(unknown)", "not_an_object"): 1, ("crash", "internal"): 1}
    assert adapter.agent == "Agent"


def test_observers_are_told_every_outcome_with_bounded_action_names():
    adapter = LegacyAdapter("Agent", MESSAGE)
    seen: list[tuple[str, str, str]] = []
    adapter.observers.append(lambda *outcome: seen.append(outcome))
    for request in ({"action": "echo"}, {"action": "no-such-action-1"}, {"action": "no-such-action-2"}, "text"):
        adapter.handle(request, TABLE)
    assert seen == [("Agent", "echo", "ok"), ("Agent", "(unknown)", "unknown_action"),
                    ("Agent", "(unknown)", "unknown_action"), ("Agent", "(unknown)", "not_an_object")]


# -- the Handler contract --------------------------------------------------------------------------
class Plain(Handler):
    name = "Plain"


class Declared(Handler):
    name = "Declared"
    legacy_vocabulary = LegacyVocabulary(missing_action="")

    def legacy_table(self, call: LegacyCall) -> LegacyTable:
        return LegacyTable({"where": lambda _request: {"status": "success", "port": call.port, "peer": call.peer}})

    def handle_legacy_from(self, request, port: int, peer: str | None) -> dict:
        return self.legacy_reply(request, LegacyCall(port, peer))


def test_a_handler_without_a_table_answers_as_base_agent():
    handler = Plain()
    counts = counted(handler.legacy_adapter)
    assert handler.handle_legacy({"action": "ping"}, 7000)["message"] == "Plain is healthy"
    assert handler.handle_legacy({"action": "x"}, 7000) == {"status": "error", "error": "Unknown action: x"}
    assert handler.handle_legacy([1], 7000) == {"status": "error", "error": "Unknown action: None"}
    assert counts[("ping", "ok")] == 1


def test_a_handler_declares_its_table_and_vocabulary():
    handler = Declared()
    assert handler.handle_legacy_from({"action": "where"}, 7001, "10.0.0.2") == {
        "status": "success", "port": 7001, "peer": "10.0.0.2"}
    assert handler.handle_legacy({"action": "where"}, 7001)["peer"] is None
    assert handler.handle_legacy({}, 7001) == {"status": "error", "message": "Unknown action: "}
    assert handler.legacy_adapter is handler.legacy_adapter               # one adapter per handler


def test_replies_encode_as_before():
    assert json.dumps(answer({"action": "nope"})) == '{"status": "error", "message": "Unknown action: nope"}'
