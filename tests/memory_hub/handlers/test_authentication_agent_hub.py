"""AuthenticationAgent in a running MemoryHub: native, route (ZeroMQ and HTTP) and bad-input forms.
(The legacy flow and the JWT attacks are in tests/bus/test_security_auth.py.)"""
from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest

from bus.errors import BadRequest, Conflict, HubError
from tests.support.hubproc import HubProcess


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    with HubProcess("memory_hub", tmp_path_factory.mktemp("auth-hub")) as running:
        yield running


def http(hub, method: str, path: str, body: dict | None = None, token: str | None = None) -> tuple[int, dict]:
    headers = {"Content-Type": "application/json", **({"Authorization": f"Bearer {token}"} if token else {})}
    req = urllib.request.Request(hub.http_url + path, method=method, headers=headers,
                                 data=json.dumps(body).encode() if body is not None else None)
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def test_native_register_login_verify_logout(hub):
    with hub.client() as admin:
        assert admin.call("AuthenticationAgent", "register", {"user_id": "n1", "password": "pw-secret"}) == {
            "user_id": "n1", "scopes": []}
        with pytest.raises(Conflict):
            admin.call("AuthenticationAgent", "register", {"user_id": "n1", "password": "pw-secret"})
    with hub.client(token=None, encoding="json") as anonymous:
        login = anonymous.call("AuthenticationAgent", "login", {"user_id": "n1", "password": "pw-secret", "ttl_s": 120})
        assert login["sub"] == "n1" and login["scopes"] == [] and login["token_type"] == "Bearer"
        verified = anonymous.call("AuthenticationAgent", "verify", {"token": login["token"]})
        assert verified == {"valid": True, "sub": "n1", "scopes": [], "exp": login["expires_at"]}
    with hub.client() as admin:
        revoked = admin.call("AuthenticationAgent", "logout", {"token": login["token"]})
        assert revoked["expires_at"] == login["expires_at"]
        assert admin.call("AuthenticationAgent", "verify", {"token": login["token"]})["valid"] is False


def test_route_forms_over_zeromq_and_http(hub):
    hub.legacy_request(7116, {"action": "register", "user_id": "r1", "password": "pw-secret"})
    with hub.client(token=None) as anonymous:
        token = anonymous.route("POST", "/auth/login", {"user_id": "r1", "password": "pw-secret"})["token"]
        assert anonymous.route("POST", "/auth/verify", {"token": token})["sub"] == "r1"
    status, body = http(hub, "POST", "/auth/login", {"user_id": "r1", "password": "pw-secret"})
    assert status == 200 and body["sub"] == "r1"
    status, body = http(hub, "POST", "/auth/logout", {}, token=body["token"])
    assert status == 200 and body["revoked"]
    status, body = http(hub, "POST", "/auth/logout", {"token": token})     # public: the token is the proof
    assert status == 200 and body["revoked"]
    status, body = http(hub, "POST", "/auth/logout", {})
    assert status == 400                                          # nothing to revoke
    status, body = http(hub, "POST", "/auth/login", {"user_id": "r1", "password": "nope"})
    assert status == 401 and body["error"]["message"] == "invalid user_id or password"


@pytest.mark.parametrize("action, args, field", [
    ("login", {"user_id": "x"}, "password"),
    ("login", {"user_id": 5, "password": "x-secret"}, "user_id"),
    ("login", {"user_id": "x", "password": "p-secret" * 2000}, "password"),
    ("login", {"user_id": "x", "password": "p-secret", "extra": 1}, "extra"),
    ("login", {"user_id": "x", "password": "p-secret", "ttl_s": 0}, "ttl_s"),
    ("verify", {}, "token"),
    ("register", {"user_id": "u" * 200, "password": "p-secret"}, "user_id"),
    ("register", {"user_id": "u", "password": "p-secret", "scopes": "CacheManager"}, "scopes"),
])
def test_bad_input_names_the_field(hub, action, args, field):
    with hub.client() as client, pytest.raises(BadRequest) as err:
        client.call("AuthenticationAgent", action, args)
    assert err.value.details.get("field") == field


def test_legacy_bad_input_and_garbage(hub):
    assert hub.legacy_request(7116, {"action": "login"}) == {"status": "error",
                                                             "message": "Missing user_id or password"}
    assert hub.legacy_request(7116, {"action": "validate_token"}) == {"status": "error", "message": "Missing token"}
    assert hub.legacy_request(7116, {"action": "reboot"}) == {"status": "error", "message": "Unknown action: reboot"}
    assert hub.legacy_request(7116, None, raw=b"not json")["status"] == "error"



def test_legacy_register_has_the_native_limits(hub):
    """Issue 18 point 3: a 1 MB user_id, a 2 MB password and a 1-character password used to register."""
    for user_id, password, message in (("u" * 1_000_000, "long-enough", "user_id is too long (max 128)"),
                                       ("big", "p" * 2_000_000, "password is too long (max 1024 bytes)"),
                                       ("short", "p", "password is too short (min 8 characters)")):
        reply = hub.legacy_request(7116, {"action": "register", "user_id": user_id, "password": password})
        assert reply == {"status": "error", "message": message}
    reply = hub.legacy_request(7116, {"action": "login", "user_id": "u" * 1_000_000, "password": "long-enough"})
    assert reply == {"status": "error", "message": "user_id is too long (max 128)"}


def test_legacy_login_does_not_tell_which_users_exist(hub):
    hub.legacy_request(7116, {"action": "register", "user_id": "exists", "password": "right-secret"})
    unknown = hub.legacy_request(7116, {"action": "login", "user_id": "no-such-user", "password": "right-secret"})
    wrong = hub.legacy_request(7116, {"action": "login", "user_id": "exists", "password": "wrong-secret"})
    assert unknown == wrong == {"status": "error", "message": "Invalid user_id or password"}


def test_health_appears_in_hub_actions(hub):
    with hub.client() as client:
        actions = client.call("hub", "actions")["actions"]["AuthenticationAgent"]
    assert actions["login"]["public"] is True and actions["verify"]["public"] is True
    assert actions["logout"]["public"] is True and actions["register"]["public"] is False
    with pytest.raises(HubError), hub.client(token=None) as anonymous:
        anonymous.call("AuthenticationAgent", "register", {"user_id": "a", "password": "b-secret"})
