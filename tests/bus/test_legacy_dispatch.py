"""bus.legacy.dispatch_legacy: the shared handle_legacy skeleton (validation, health, lookup, error rendering)."""
from __future__ import annotations

import pytest

from bus.errors import BadRequest, HubError, NotFound, Unavailable
from bus.legacy import dispatch_legacy


def error(message: str) -> dict:
    return {"status": "error", "message": message}


def raiser(exc: Exception):
    def act(request: dict) -> dict:
        raise exc
    return act


ACTIONS = {
    "echo": lambda request: {"status": "success", "echo": request.get("value")},
    "missing": raiser(NotFound("no such thing")),
    "down": raiser(Unavailable("store down")),
    "bad": raiser(BadRequest("bad field", details={"field": "limit"})),
    "crash": raiser(RuntimeError("boom")),
}


def dispatch(request, **kw) -> dict:
    return dispatch_legacy(request, ACTIONS, error=error, health=lambda: {"status": "ok", "health": True}, **kw)


def test_calls_the_action_with_the_request():
    assert dispatch({"action": "echo", "value": 7}) == {"status": "success", "echo": 7}


@pytest.mark.parametrize("request_", [[1, 2], "ping", 3, None])
def test_non_dict_request_is_invalid_format(request_):
    assert dispatch(request_) == error("Invalid request format")


@pytest.mark.parametrize("name", ["ping", "health", "health_check"])
def test_health_actions_answer_health(name):
    assert dispatch({"action": name}) == {"status": "ok", "health": True}


def test_health_actions_can_be_narrowed_and_fall_through_to_the_table():
    actions = {"health_check": lambda _: {"status": "success", "healthy": True}}
    reply = dispatch_legacy({"action": "health_check"}, actions, error=error, health=lambda: {"status": "HEALTHY"},
                            health_actions=("ping", "health"))
    assert reply == {"status": "success", "healthy": True}
    assert dispatch_legacy({"action": "ping"}, actions, error=error, health=lambda: {"status": "HEALTHY"},
                           health_actions=("ping", "health")) == {"status": "HEALTHY"}


def test_without_health_callback_health_actions_are_looked_up():
    assert dispatch_legacy({"action": "ping"}, ACTIONS, error=error) == error("Unknown action: ping")


@pytest.mark.parametrize("request_, name", [({"action": "nope"}, "nope"), ({}, "None"), ({"action": None}, "None"),
                                            ({"action": ["echo"]}, "['echo']"), ({"action": 5}, "5")])
def test_unknown_or_non_string_action(request_, name):
    assert dispatch(request_) == error(f"Unknown action: {name}")


def test_unknown_message_is_configurable():
    assert dispatch({"action": "nope"}, unknown=lambda _: "Unknown action") == error("Unknown action")


def test_hub_error_renders_its_message_by_default():
    assert dispatch({"action": "missing"}) == error("no such thing")
    assert dispatch({"action": "bad"}) == error("bad field")


def test_first_matching_error_entry_wins():
    errors = ((Unavailable, lambda _: {"status": "error", "message": "Redis is not available"}),
              (HubError, lambda exc: {"status": "error", "reason": exc.message}))
    assert dispatch({"action": "down"}, errors=errors) == {"status": "error", "message": "Redis is not available"}
    assert dispatch({"action": "missing"}, errors=errors) == {"status": "error", "reason": "no such thing"}


def test_error_entry_can_render_non_hub_errors():
    errors = ((RuntimeError, lambda exc: error(f"crashed: {exc}")),)
    assert dispatch({"action": "crash"}, errors=errors) == error("crashed: boom")


def test_untyped_errors_propagate():
    with pytest.raises(RuntimeError, match="boom"):
        dispatch({"action": "crash"})
