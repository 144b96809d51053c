"""ExperienceTracker end to end: MemoryHub as a process; legacy REQ/JSON clients on 7112/8112, native actions and the
/experience/{exp_id} route form.
"""
from __future__ import annotations

import pytest

from bus.errors import BadRequest, NotFound
from tests.support.hubproc import HubProcess

MAIN, HEALTH = 7112, 8112


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    with HubProcess("memory_hub", tmp_path_factory.mktemp("experience-e2e")) as running:
        yield running


def send(hub: HubProcess, request) -> dict:
    return hub.legacy_request(MAIN, request)


def test_every_legacy_action_as_legacy_clients_send_it(hub):
    first = send(hub, {"action": "track_experience", "content": "user fixed the printer", "importance_score": 0.8,
                       "metadata": {"device": "printer"}, "expires_at": "2999-12-31T23:59:59"})
    assert first["status"] == "success" and set(first) == {"status", "experience_id"}
    second = send(hub, {"action": "track_experience", "content": "user asked for a joke"})
    reply = send(hub, {"action": "get_experiences", "limit": 10})
    assert reply["status"] == "success"
    ids = [e["experience_id"] for e in reply["experiences"]]
    assert ids[:2] == [second["experience_id"], first["experience_id"]]
    printer = reply["experiences"][1]
    assert printer["content"] == "user fixed the printer" and printer["importance_score"] == 0.8
    assert printer["metadata"] == {"device": "printer"} and printer["memory_type"] == "experience"
    assert printer["expires_at"] is not None and printer["created_at"]
    assert len(send(hub, {"action": "get_experiences", "limit": 1})["experiences"]) == 1
    assert len(send(hub, {"action": "get_experiences"})["experiences"]) >= 2            # limit defaults to 10
    assert send(hub, {"action": "forward"}) == {"status": "error", "message": "Unknown action: forward"}


@pytest.mark.parametrize("request_, message", [
    ({"action": "track_experience"}, "Missing content parameter"),
    ({"action": "track_experience", "content": 42}, "Invalid content parameter"),
    ({"action": "track_experience", "content": "x", "importance_score": "very"}, "Invalid importance_score parameter"),
    ({"action": "track_experience", "content": "x", "metadata": "m"}, "Invalid metadata parameter"),
    ({"action": "track_experience", "content": "x", "expires_at": "someday"}, "Invalid expires_at parameter"),
    ({"action": "track_experience", "content": "x" * 70000}, "Invalid content parameter"),
    ({"action": "get_experiences", "limit": "5"}, "Invalid limit parameter"),
])
def test_bad_legacy_input(hub, request_, message):
    assert send(hub, request_) == {"status": "error", "message": message}


def test_health_port_and_health_actions(hub):
    for reply in (hub.legacy_request(HEALTH, {"action": "health_check"}), hub.legacy_request(HEALTH, [1, 2]),
                  send(hub, {"action": "ping"})):
        assert reply["status"] == "ok" and reply["service"] == "ExperienceTracker"
        assert reply["port"] == MAIN and reply["health_port"] == HEALTH
        assert reply["initialization_status"] == "complete" and "timestamp" in reply


def test_native_actions(client):
    exp = client.call("ExperienceTracker", "track_experience", {"content": {"event": "alarm set", "time": "07:00"},
                                                               "importance_score": 0.6})
    assert exp["exp_id"].startswith("exp-") and exp["content"] == {"event": "alarm set", "time": "07:00"}
    assert client.call("ExperienceTracker", "get_experience", {"exp_id": exp["exp_id"]}) == exp
    listed = client.call("ExperienceTracker", "get_experiences", {"limit": 50, "min_importance": 0.6})
    assert exp["exp_id"] in [e["exp_id"] for e in listed["experiences"]]
    assert client.call("ExperienceTracker", "delete_experience", {"exp_id": exp["exp_id"]})["deleted"] is True
    with pytest.raises(NotFound):
        client.call("ExperienceTracker", "get_experience", {"exp_id": exp["exp_id"]})


def test_legacy_and_native_see_the_same_experiences(hub, client):
    tracked = send(hub, {"action": "track_experience", "content": "shared one"})
    assert client.call("ExperienceTracker", "get_experience",
                       {"exp_id": tracked["experience_id"]})["content"] == "shared one"


def test_route_form(client):
    put = client.route("PUT", "/experience/exp-custom-1", {"content": "named experience", "importance_score": 0.4,
                                                           "expires_at": 4102444800})
    assert put["exp_id"] == "exp-custom-1" and put["expires_at"] == 4102444800.0
    assert client.route("GET", "/experience/exp-custom-1")["content"] == "named experience"
    assert client.route("DELETE", "/experience/exp-custom-1") == {"exp_id": "exp-custom-1", "deleted": True}
    with pytest.raises(NotFound):
        client.route("GET", "/experience/exp-custom-1")


def test_expired_experience_is_not_found(client):
    client.call("ExperienceTracker", "track_experience", {"content": "stale", "exp_id": "exp-old",
                                                         "expires_at": "2000-01-01T00:00:00Z"})
    with pytest.raises(NotFound):
        client.route("GET", "/experience/exp-old")


@pytest.mark.parametrize("args, field", [({}, "content"), ({"content": 1}, "content"),
                                         ({"content": "x", "importance_score": 1.5}, "importance_score"),
                                         ({"content": "x", "expires_at": "later"}, "expires_at")])
def test_native_bad_request_names_the_field(client, args, field):
    with pytest.raises(BadRequest) as err:
        client.call("ExperienceTracker", "track_experience", args)
    assert field in err.value.message
