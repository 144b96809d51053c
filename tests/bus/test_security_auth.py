"""Security of a running MemoryHub (a real process): legacy auth flow, JWT attacks on the native port,
scope enforcement, login rate limit, the trust formula on the legacy ports, confined utilities.

Requires the hub to install its revocation list's ``is_revoked`` as ``tokens.is_revoked`` (hub.py ``compose``).
"""
from __future__ import annotations

import base64
import json
import os
import time
import urllib.error
import urllib.request

import jwt
import pytest

from bus.errors import Busy, Forbidden, HubError, Unauthorized
from bus.tokens import TokenService, read_secret, secret_path
from tests.support.hubproc import HubProcess

CONFIG = {"hub": {"workers": 4}, "auth_agent": {"login_max_per_user": 4},
          "trust": {"legacy_max_step": 1.0}}   # the exact legacy formula (the bounded step: test_legacy_limits_hub)
PROBE = ("AgentTrustScorer", "get_trust_score", {"model_id": "probe"})   # any non-public action


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    with HubProcess("memory_hub", tmp_path_factory.mktemp("security"), config=CONFIG) as running:
        yield running


@pytest.fixture(scope="module")
def secret(hub) -> bytes:
    return read_secret(secret_path(hub.data_dir))


def call_with(hub, token, agent="AgentTrustScorer", action="get_trust_score", args=None):
    with hub.client(token=token) as client:
        return client.call(agent, action, args if args is not None else {"model_id": "probe"})


def b64(data: dict | bytes) -> str:
    raw = data if isinstance(data, bytes) else json.dumps(data, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def claims(**extra) -> dict:
    now = int(time.time())
    base = {"sub": "mallory", "iat": now, "nbf": now, "exp": now + 600, "jti": os.urandom(8).hex(),
            "scope": ["*"], "iss": "voice-hubs", "aud": ["memory_hub"]}
    base.update(extra)
    return base


def http_post(hub, path: str, body: dict, token: str | None = None) -> tuple[int, dict]:
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    req = urllib.request.Request(hub.http_url + path, data=json.dumps(body).encode(), headers=headers,
                                 method="POST")
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


# ------------------------------------------------------------------------------------------- legacy auth

def test_legacy_auth_flow(hub):
    assert hub.legacy_request(7116, {"action": "register", "user_id": "legacy-user", "password": "pw-secret"}) == {
        "status": "success", "message": "User registered successfully"}
    assert hub.legacy_request(7116, {"action": "register", "user_id": "legacy-user", "password": "pw-secret"}) == {
        "status": "error", "message": "User already exists"}
    assert hub.legacy_request(7116, {"action": "login", "user_id": "legacy-user", "password": "bad"}) == {
        "status": "error", "message": "Invalid user_id or password"}
    login = hub.legacy_request(7116, {"action": "login", "user_id": "legacy-user", "password": "pw-secret"})
    assert login["status"] == "success" and login["message"] == "Login successful"
    token = login["session"]["token"]
    assert hub.legacy_request(7116, {"action": "validate_token", "token": token}) == {"status": "success",
                                                                                      "valid": True}
    assert hub.legacy_request(7116, {"action": "logout", "token": token}) == {"status": "success",
                                                                              "message": "Logout successful"}
    assert hub.legacy_request(7116, {"action": "validate_token", "token": token}) == {"status": "success",
                                                                                      "valid": False}
    health = hub.legacy_request(8116, {"anything": True})
    assert health["agent_type"] == "authentication" and health["registered_users"] >= 1


# ------------------------------------------------------------------------------------------- JWT attacks

def test_valid_token_is_accepted(hub, secret):
    token = jwt.encode(claims(), secret, algorithm="HS256")
    assert call_with(hub, token)["trust_score"] == 0.5


def test_alg_none_is_refused(hub):
    token = f"{b64({'alg': 'none', 'typ': 'JWT'})}.{b64(claims())}."
    with pytest.raises(Unauthorized):
        call_with(hub, token)
    with pytest.raises(Unauthorized):
        call_with(hub, jwt.encode(claims(), None, algorithm="none"))


def test_tampered_payload_is_refused(hub, secret):
    header, _payload, signature = jwt.encode(claims(scope=["CacheManager"]), secret, algorithm="HS256").split(".")
    forged = f"{header}.{b64(claims(scope=['*']))}.{signature}"
    with pytest.raises(Unauthorized, match="signature"):
        call_with(hub, forged)


def test_wrong_key_and_other_algorithm_are_refused(hub, secret):
    with pytest.raises(Unauthorized):
        call_with(hub, TokenService("k" * 64).mint("mallory")[0])
    with pytest.raises(Unauthorized, match="algorithm"):
        call_with(hub, jwt.encode(claims(), secret, algorithm="HS512"))


def test_expired_and_claimless_tokens_are_refused(hub, secret):
    past = int(time.time()) - 3600
    with pytest.raises(Unauthorized, match="expired"):
        call_with(hub, jwt.encode(claims(iat=past - 60, nbf=past - 60, exp=past), secret, algorithm="HS256"))
    no_jti = {k: v for k, v in claims().items() if k != "jti"}
    with pytest.raises(Unauthorized):
        call_with(hub, jwt.encode(no_jti, secret, algorithm="HS256"))
    with pytest.raises(Unauthorized):
        call_with(hub, jwt.encode(claims(iss="someone-else"), secret, algorithm="HS256"))
    with pytest.raises(Unauthorized):
        call_with(hub, "not.a.jwt")


def test_token_is_refused_after_logout(hub):
    with hub.client() as admin:
        admin.call("AuthenticationAgent", "register", {"user_id": "leaver", "password": "pw-secret", "scopes": ["*"]})
    with hub.client(token=None) as anonymous:
        token = anonymous.call("AuthenticationAgent", "login", {"user_id": "leaver", "password": "pw-secret"})["token"]
    assert call_with(hub, token)["trust_score"] == 0.5
    with hub.client(token=token) as client:
        client.call("AuthenticationAgent", "logout", {})
    with pytest.raises(Unauthorized, match="revoked"):
        call_with(hub, token)
    with hub.client(token=None) as anonymous:
        assert anonymous.call("AuthenticationAgent", "verify", {"token": token}) == {"valid": False,
                                                                                     "reason": "token revoked"}
    status, body = http_post(hub, "/auth/verify", {"token": token})
    assert status == 200 and body["valid"] is False


def test_legacy_logout_revokes_on_the_native_port_too(hub):
    hub.legacy_request(7116, {"action": "register", "user_id": "both", "password": "pw-secret"})
    login = hub.legacy_request(7116, {"action": "login", "user_id": "both", "password": "pw-secret"})
    token = login["session"]["token"]
    with hub.client(token=None) as anonymous:
        assert anonymous.call("AuthenticationAgent", "verify", {"token": token})["valid"] is True
    hub.legacy_request(7116, {"action": "logout", "token": token})
    with hub.client(token=None) as anonymous:
        assert anonymous.call("AuthenticationAgent", "verify", {"token": token})["valid"] is False


# ------------------------------------------------------------------------------------------- scopes

def test_no_token_is_unauthorized_but_login_is_public(hub):
    with pytest.raises(Unauthorized):
        call_with(hub, None)
    with hub.client(token=None) as anonymous:
        assert anonymous.call("hub", "ping") is not None
        with pytest.raises(Unauthorized, match="invalid user_id or password"):
            anonymous.call("AuthenticationAgent", "login", {"user_id": "ghost", "password": "x-secret"})


def test_scoped_token_is_forbidden_elsewhere(hub):
    with hub.client() as admin:
        admin.call("AuthenticationAgent", "register", {"user_id": "cache-only", "password": "pw-secret",
                                                       "scopes": ["CacheManager"]})
        mos_actions = sorted(admin.call("hub", "actions")["actions"].get("MemoryOrchestratorService", {}))
    status, body = http_post(hub, "/auth/login", {"user_id": "cache-only", "password": "pw-secret"})
    assert status == 200 and body["scopes"] == ["CacheManager"]
    token = body["token"]
    with pytest.raises(Forbidden):
        call_with(hub, token)                                               # AgentTrustScorer
    with pytest.raises(Forbidden):
        call_with(hub, token, "AuthenticationAgent", "register", {"user_id": "x", "password": "y-secret"})
    assert mos_actions, "MemoryOrchestratorService has no native actions in this hub"
    with pytest.raises(Forbidden):
        call_with(hub, token, "MemoryOrchestratorService", mos_actions[0], {})
    with hub.client(token=token) as client:
        try:
            client.route("GET", "/cache/some-key")
        except HubError as err:
            assert err.code not in ("forbidden", "unauthorized")


def test_scope_escalation_through_register_is_refused(hub):
    with hub.client() as admin:
        admin.call("AuthenticationAgent", "register", {"user_id": "registrar", "password": "pw-secret",
                                                       "scopes": ["AuthenticationAgent"]})
    with hub.client(token=None) as anonymous:
        token = anonymous.call("AuthenticationAgent", "login",
                               {"user_id": "registrar", "password": "pw-secret"})["token"]
    with pytest.raises(Forbidden):
        call_with(hub, token, "AuthenticationAgent", "register", {"user_id": "root2", "password": "pw-secret",
                                                                  "scopes": ["*"]})


# ------------------------------------------------------------------------------------------- login rate limit

def test_login_rate_limit(hub):
    hub.legacy_request(7116, {"action": "register", "user_id": "target", "password": "right-secret"})
    for _ in range(4):
        assert hub.legacy_request(7116, {"action": "login", "user_id": "target", "password": "guess"})[
            "message"] == "Invalid user_id or password"
    assert hub.legacy_request(7116, {"action": "login", "user_id": "target", "password": "right-secret"}) == {
        "status": "error", "message": "Too many login attempts, retry later"}
    with hub.client(token=None) as anonymous, pytest.raises(Busy) as err:
        anonymous.call("AuthenticationAgent", "login", {"user_id": "target", "password": "right-secret"})
    assert err.value.retry_after_ms and err.value.retry_after_ms > 0
    status, body = http_post(hub, "/auth/login", {"user_id": "target", "password": "right-secret"})
    assert status == 429 and body["error"]["code"] == "busy"


# ------------------------------------------------------------------------------------------- trust

def test_trust_formula_on_legacy_ports(hub):
    sequence = ((True, 0.0, 1.0), (False, 5.0, 0.35), (True, 2.5, 0.7 * 2 / 3 + 0.15))
    for port, model in ((7122, "model-a"), (5626, "model-b")):
        for success, response_time, expected in sequence:
            reply = hub.legacy_request(port, {"action": "log_performance", "model_id": model, "success": success,
                                              "response_time": response_time})
            assert reply["status"] == "success" and reply["new_trust_score"] == pytest.approx(expected)
    assert hub.legacy_request(5626, {"action": "get_trust_score", "model_id": "model-a"})["trust_score"] == \
        pytest.approx(0.7 * 2 / 3 + 0.15)
    assert hub.legacy_request(7122, {"action": "get_trust_score"})["status"] == "error"
    with hub.client() as admin:
        assert admin.route("GET", "/trust/model-b")["total_interactions"] == 3


# ------------------------------------------------------------------------------------------- utilities

def test_utilities_never_touch_files_outside_their_directories(hub, tmp_path):
    outside = tmp_path / "outside"
    (outside / "dir").mkdir(parents=True)
    (outside / "precious").write_text("keep")
    (outside / "dir" / "old.log").write_text("keep")
    old = time.time() - 30 * 86400
    os.utime(outside / "dir" / "old.log", (old, old))
    temp = hub.data_dir / "utils" / "temp"
    logs = hub.data_dir / "utils" / "logs"
    temp.mkdir(parents=True, exist_ok=True)
    logs.mkdir(parents=True, exist_ok=True)
    (temp / "junk").write_text("x")
    (temp / "to-file").symlink_to(outside / "precious")
    (temp / "to-dir").symlink_to(outside, target_is_directory=True)
    (logs / "linked").symlink_to(outside / "dir", target_is_directory=True)
    with hub.client() as admin:
        for subdir in ("..", "../..", "to-dir", f"..{os.sep}..{os.sep}outside", str(outside)):
            with pytest.raises(HubError) as err:
                admin.call("UnifiedUtilsAgent", "cleanup_temp_files", {"subdir": subdir})
            assert err.value.code == "bad_request"
        status, _body = http_post(hub, "/utils/cleanup_logs", {"subdir": "linked"}, token=hub.token())
        assert status == 400
    reply = hub.legacy_request(7118, {"action": "cleanup_system", "temp_dir": str(outside), "log_dir": str(outside)})
    assert reply["temp_files"] == {"files_removed": 3, "errors": []}
    assert reply["logs"] == {"files_removed": 0, "errors": []}
    assert (outside / "precious").read_text() == "keep" and (outside / "dir" / "old.log").read_text() == "keep"
    assert (hub.data_dir / "memory_hub.db").exists() and (hub.data_dir / "jwt.secret").exists()
    assert hub.legacy_request(7118, {"action": "run_windows_disk_cleanup"})["message"] == \
        "Windows Disk Cleanup is only available on Windows"
