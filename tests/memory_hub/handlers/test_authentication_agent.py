"""AuthenticationAgent against a real migrated SQLite and a real redis-server (no hub process).

Password hashing, users in SQL, JWT sessions, logout revocation in Redis db3, the revocation check the hub
installs, the login rate limiter, and every legacy action with its legacy reply.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from collections.abc import Callable

import pytest

from agents.memory_hub.auth import (AuthAgentSettings, RevocationList, SlidingWindowLimiter, hash_password,
                                    hash_parameters, verify_password)
from agents.memory_hub.handlers.authentication_agent import AuthenticationAgent
from bus.errors import Busy, Forbidden, Unauthorized, Unavailable
from bus.events import NullPublisher
from bus.handler import CallContext, Principal
from bus.tokens import TokenService

SECRET = "s" * 64


@dataclass
class Hub:
    """The parts of a composed hub these tests look at."""

    agent: AuthenticationAgent
    tokens: TokenService
    events: NullPublisher
    revocations: RevocationList


@pytest.fixture
def make_hub(compose_hub, sql_store, redis_store) -> Callable[..., Hub]:
    def make(redis: Any = None, **auth_agent: Any) -> Hub:
        tokens, events = TokenService(SECRET, revocation_recheck_s=0.0), NullPublisher()
        parts = compose_hub(sql_store, redis if redis is not None else redis_store, tokens=tokens, events=events,
                            auth_agent=auth_agent)
        return Hub(parts.handler(AuthenticationAgent), tokens, events, parts.revocations)
    return make


@pytest.fixture
def services(make_hub) -> Hub:
    return make_hub()


@pytest.fixture
def agent(services) -> AuthenticationAgent:
    return services.agent


def ctx(action: str, principal: Principal | None = None, peer: str | None = None) -> CallContext:
    return CallContext(agent="AuthenticationAgent", action=action, principal=principal, peer=peer)


def legacy(agent: AuthenticationAgent, request) -> dict:
    return agent.handle_legacy(request, 7116)


# ------------------------------------------------------------------------------------------- passwords

def test_password_hash_is_salted_scrypt_with_parameters():
    first, second = hash_password("hunter2"), hash_password("hunter2")
    assert first != second                         # per-hash salt
    assert first.startswith("scrypt$16384$8$1$")
    assert hash_parameters(first) == (16384, 8, 1)
    assert verify_password("hunter2", first) and verify_password("hunter2", second)
    assert not verify_password("hunter3", first)
    assert not verify_password("hunter2", "sha256$abc") and not verify_password("x", "garbage")


def test_user_row_never_holds_the_password_or_its_sha256(agent, sql_store):
    import hashlib

    from agents.memory_hub.stores.sql_models import User

    assert legacy(agent, {"action": "register", "user_id": "ana", "password": "pw-ana-secret"})["status"] == "success"
    with sql_store.session() as session:
        stored = session.get(User, "ana").password_hash
    assert "pw-ana-secret" not in stored and hashlib.sha256(b"pw-ana-secret").hexdigest() not in stored
    assert stored.startswith("scrypt$")


def test_login_rehashes_when_parameters_change(make_hub, tmp_path, sql_store, redis_store):
    from agents.memory_hub.stores.sql_models import User

    weak = make_hub(scrypt_n=1024).agent
    weak.register("bo", "pw-secret")
    strong = make_hub().agent
    strong.login("bo", "pw-secret")
    with sql_store.session() as session:
        assert hash_parameters(session.get(User, "bo").password_hash) == (16384, 8, 1)
    strong.login("bo", "pw-secret")


# ------------------------------------------------------------------------------------------- legacy

def test_legacy_register_login_validate_logout_flow(agent):
    assert legacy(agent, {"action": "register", "user_id": "u1", "password": "p1-secret"}) == {
        "status": "success", "message": "User registered successfully"}
    reply = legacy(agent, {"action": "login", "user_id": "u1", "password": "p1-secret"})
    assert reply["status"] == "success" and reply["message"] == "Login successful"
    session = reply["session"]
    assert set(session) == {"token", "expires_at"}
    assert datetime.fromisoformat(session["expires_at"]) > datetime.now()
    token = session["token"]
    assert token.count(".") == 2                                   # a JWT
    assert legacy(agent, {"action": "validate_token", "token": token}) == {"status": "success", "valid": True}
    assert legacy(agent, {"action": "logout", "token": token}) == {"status": "success",
                                                                    "message": "Logout successful"}
    assert legacy(agent, {"action": "validate_token", "token": token}) == {"status": "success", "valid": False}
    assert legacy(agent, {"action": "logout", "token": token}) == {"status": "error", "message": "Invalid token"}


@pytest.mark.parametrize("request_, message", [
    ({"action": "register", "user_id": "x"}, "Missing user_id or password"),
    ({"action": "register", "password": "x-secret"}, "Missing user_id or password"),
    ({"action": "register", "user_id": "", "password": "x-secret"}, "Missing user_id or password"),
    ({"action": "register", "user_id": ["x"], "password": "x-secret"}, "Missing user_id or password"),
    ({"action": "login", "user_id": "x"}, "Missing user_id or password"),
    ({"action": "login", "user_id": "ghost", "password": "x-secret"}, "Invalid user_id or password"),
    ({"action": "logout"}, "Missing token"),
    ({"action": "logout", "token": "not-a-token"}, "Invalid token"),
    ({"action": "validate_token"}, "Missing token"),
    ({"action": "validate_token", "token": 42}, "Missing token"),
    ({"action": "fly"}, "Unknown action: fly"),
    ({"action": "ping"}, "Unknown action: ping"),
    ({}, "Unknown action: "),
])
def test_legacy_errors(agent, request_, message):
    assert legacy(agent, request_) == {"status": "error", "message": message}


def test_legacy_duplicate_user_and_wrong_password(agent):
    legacy(agent, {"action": "register", "user_id": "dup", "password": "a-secret"})
    assert legacy(agent, {"action": "register", "user_id": "dup", "password": "b-secret"}) == {
        "status": "error", "message": "User already exists"}
    assert legacy(agent, {"action": "login", "user_id": "dup", "password": "b-secret"}) == {
        "status": "error", "message": "Invalid user_id or password"}


def test_legacy_validate_garbage_token_is_false(agent, services):
    assert legacy(agent, {"action": "validate_token", "token": "abc"}) == {"status": "success", "valid": False}
    other = TokenService("o" * 64).mint("u", ["*"])[0]
    assert legacy(agent, {"action": "validate_token", "token": other}) == {"status": "success", "valid": False}


def test_legacy_non_object_request(agent):
    assert legacy(agent, ["login"]) == {"status": "error",
                                        "message": "Internal server error: 'list' object has no attribute 'get'"}


def test_legacy_health_reply(agent):
    legacy(agent, {"action": "register", "user_id": "h", "password": "p-secret"})
    legacy(agent, {"action": "login", "user_id": "h", "password": "p-secret"})
    reply = legacy(agent, {"action": "health_check"})
    assert reply["status"] == "ok" and reply["agent_type"] == "authentication"
    assert reply["registered_users"] == 1 and reply["active_sessions"] == 1
    assert reply["cleanup_thread_alive"] is True and reply["uptime_seconds"] >= 0
    assert reply["message"] == "AuthenticationAgent is healthy" and reply["ready"] is True
    assert agent.legacy_health(8116)["agent_type"] == "authentication"


def test_users_survive_a_new_agent(make_hub, tmp_path, sql_store, redis_store, agent):
    legacy(agent, {"action": "register", "user_id": "keep", "password": "pw-secret"})
    again = make_hub().agent
    assert legacy(again, {"action": "login", "user_id": "keep", "password": "pw-secret"})["status"] == "success"


# ------------------------------------------------------------------------------------------- native

def test_native_login_carries_user_scopes_and_verify(agent, services):
    agent.register_user({"user_id": "svc", "password": "pw-secret", "scopes": ["CacheManager"]}, ctx("register"))
    reply = agent.login_action({"user_id": "svc", "password": "pw-secret", "ttl_s": None}, ctx("login"))
    assert reply["token_type"] == "Bearer" and reply["scopes"] == ["CacheManager"] and reply["sub"] == "svc"
    principal = services.tokens.verify(reply["token"])
    assert principal.scopes == ("CacheManager",) and principal.subject == "svc"
    verified = agent.verify_action({"token": reply["token"]}, ctx("verify"))
    assert verified == {"valid": True, "sub": "svc", "scopes": ["CacheManager"], "exp": reply["expires_at"]}


def test_native_login_does_not_say_which_part_was_wrong(agent):
    agent.register("real", "pw-secret")
    for user_id, password in (("real", "nope"), ("ghost", "pw-secret")):
        with pytest.raises(Unauthorized) as err:
            agent.login_action({"user_id": user_id, "password": password, "ttl_s": None}, ctx("login"))
        assert err.value.message == "invalid user_id or password"


def test_native_login_ttl_is_capped(agent, services):
    agent.register("ttl", "pw-secret")
    reply = agent.login_action({"user_id": "ttl", "password": "pw-secret", "ttl_s": 60}, ctx("login"))
    claims = services.tokens.verify(reply["token"]).claims
    assert claims["exp"] - claims["iat"] == 60
    long = agent.login_action({"user_id": "ttl", "password": "pw-secret", "ttl_s": 30 * 86400}, ctx("login"))
    claims = services.tokens.verify(long["token"]).claims
    assert claims["exp"] - claims["iat"] == 86400


def test_native_register_cannot_grant_more_than_caller_holds(agent):
    narrow = Principal("op", scopes=("AuthenticationAgent",))
    with pytest.raises(Forbidden):
        agent.register_user({"user_id": "evil", "password": "pw-secret", "scopes": ["*"]}, ctx("register", narrow))
    assert agent.register_user({"user_id": "ok", "password": "pw-secret", "scopes": ["AuthenticationAgent"]},
                               ctx("register", narrow)) == {"user_id": "ok", "scopes": ["AuthenticationAgent"]}
    assert agent.register_user({"user_id": "dflt", "password": "pw-secret", "scopes": None},
                               ctx("register", narrow)) == {"user_id": "dflt", "scopes": []}


def test_native_logout_own_token_and_verify_reason(agent, services):
    agent.register("me", "pw-secret")
    token = agent.login_action({"user_id": "me", "password": "pw-secret", "ttl_s": None}, ctx("login"))["token"]
    principal = services.tokens.verify(token)
    reply = agent.logout_action({"token": None}, ctx("logout", principal))
    assert reply["revoked"] == principal.token_id
    with pytest.raises(Unauthorized, match="revoked"):
        services.tokens.verify(token)
    assert agent.verify_action({"token": token}, ctx("verify")) == {"valid": False, "reason": "token revoked"}


# ------------------------------------------------------------------------------------------- revocation

def test_revocation_is_in_redis_db3_with_ttl_until_exp(agent, services, redis_store):
    agent.register("r", "pw-secret")
    token, claims = agent.login("r", "pw-secret")
    agent.logout(token)
    assert redis_store.auth.exists(f"revoked:{claims['jti']}")
    ttl = redis_store.auth.ttl(f"revoked:{claims['jti']}")
    assert 86400 - 60 < ttl <= 86400 + 5
    assert redis_store.client("auth").exists(f"auth:revoked:{claims['jti']}")


def wait_until(predicate, timeout: float = 5.0) -> bool:
    until = time.monotonic() + timeout
    while time.monotonic() < until:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


def test_revocation_seen_by_another_process_view(make_hub, tmp_path, agent, sql_store, redis_store):
    """A second services instance (another process sharing the database) sees the revocation after its
    background refresh; the check itself never leaves memory."""
    agent.register("shared", "pw-secret")
    token, claims = agent.login("shared", "pw-secret")
    check = make_hub().revocations.is_revoked
    assert check(claims["jti"]) is False
    agent.logout(token)
    assert wait_until(lambda: check(claims["jti"]) is True, timeout=3.0)


def test_revocation_is_published_as_an_event_with_ids_only(agent, services):
    agent.register("pub", "pw-secret")
    token, claims = agent.login("pub", "pw-secret")
    agent.logout(token)
    assert ("auth.revoked", {"jti": claims["jti"], "exp": float(claims["exp"])}) in services.events.events


def test_revocation_check_does_no_io_when_redis_is_down(make_hub, tmp_path, sql_store, redis_controller):
    from agents.memory_hub.stores.redis_store import RedisStore

    store = RedisStore(redis_controller.url)
    services = make_hub(store)
    agent = services.agent
    agent.register("down", "pw-secret")
    _token, claims = agent.login("down", "pw-secret")
    revoked_token, revoked = agent.login("down", "pw-secret")
    agent.logout(revoked_token)
    redis_controller.kill()
    check = services.revocations.is_revoked
    assert check(revoked["jti"]) is True                       # known in memory
    assert check(claims["jti"]) is False                      # SQL is reachable: the list stays fresh
    fresh = RevocationList(None, AuthAgentSettings(), sql=sql_store)  # a restarted hub reloads revocations from SQL
    assert fresh.is_revoked(revoked["jti"]) is True
    fresh.close()
    redis_controller.restart()
    store.close()


def test_revocation_fails_closed_when_stale_unless_fail_open(tmp_path, redis_controller):
    from agents.memory_hub.stores.redis_store import RedisStore

    store = RedisStore(redis_controller.url)
    timing = {"revocation_poll_s": 0.05, "revocation_stale_s": 0.3, "revocation_republish_s": 30.0}
    closed = RevocationList(store, AuthAgentSettings(revocation_fail_open=False, **timing))
    revocations = RevocationList(store, AuthAgentSettings(revocation_fail_open=True, **timing))
    revocations.revoke("gone", 4102444800.0)
    assert closed.is_revoked("other") is False
    redis_controller.kill()                                     # no SQL here: Redis was the only source
    assert revocations.is_revoked("gone") is True
    assert wait_until(lambda: _raises_unavailable(closed, "other"), timeout=5.0)
    assert revocations.is_revoked("other") is False             # fail-open: memory only
    revocations.close()
    closed.close()
    store.close()


def _raises_unavailable(revocations: RevocationList, jti: str) -> bool:
    try:
        revocations.is_revoked(jti)
    except Unavailable:
        return True
    return False


# ------------------------------------------------------------------------------------------- rate limit

def test_sliding_window_limiter_counts_and_forgets():
    now = [1000.0]
    limiter = SlidingWindowLimiter(3, 10.0, clock=lambda: now[0])
    assert [limiter.hit("k") for _ in range(3)] == [None, None, None]
    wait = limiter.hit("k")
    assert wait == pytest.approx(10.0)
    assert limiter.hit("other") is None
    now[0] += 10.0
    assert limiter.hit("k") is None


def test_login_is_rate_limited_per_user(make_hub, tmp_path, sql_store, redis_store):
    agent = make_hub(login_max_per_user=3).agent
    agent.register("victim", "right-secret")
    for _ in range(3):
        assert legacy(agent, {"action": "login", "user_id": "victim", "password": "wrong"})["message"] == \
            "Invalid user_id or password"
    assert legacy(agent, {"action": "login", "user_id": "victim", "password": "right-secret"}) == {
        "status": "error", "message": "Too many login attempts, retry later"}
    with pytest.raises(Busy) as err:
        agent.login_action({"user_id": "victim", "password": "right-secret", "ttl_s": None}, ctx("login"))
    assert err.value.retry_after_ms > 0
    assert legacy(agent, {"action": "login", "user_id": "someone-else", "password": "x-secret"})["message"] == \
        "Invalid user_id or password"


def test_login_is_rate_limited_per_peer(make_hub, tmp_path, sql_store, redis_store):
    agent = make_hub(login_max_per_peer=2).agent
    for name in ("a", "b"):
        with pytest.raises(Unauthorized):
            agent.login_action({"user_id": name, "password": "x-secret", "ttl_s": None}, ctx("login", peer="10.0.0.5"))
    with pytest.raises(Busy):
        agent.login_action({"user_id": "c", "password": "x-secret", "ttl_s": None}, ctx("login", peer="10.0.0.5"))
    with pytest.raises(Unauthorized):
        agent.login_action({"user_id": "c", "password": "x-secret", "ttl_s": None}, ctx("login", peer="10.0.0.6"))


def test_password_work_beyond_the_gate_is_busy_not_queued(agent):
    from agents.memory_hub.auth import PasswordGate

    gate = PasswordGate(1)
    with gate.slot(), pytest.raises(Busy), gate.slot():
        pass
    with gate.slot():                                  # released again
        pass
    with pytest.raises(Exception, match="too short"):
        agent.register("weak", "1234567")


def test_revocation_list_stays_fresh_from_redis_when_sql_fails(tmp_path, redis_store):
    class BrokenSql:
        def session(self):
            raise Unavailable("database is not available")

    timing = AuthAgentSettings(revocation_fail_open=False, revocation_poll_s=0.05, revocation_stale_s=0.3,
                               revocation_republish_s=30.0)
    writer = RevocationList(redis_store, timing)
    writer.revoke("via-redis", 4102444800.0)
    reader = RevocationList(redis_store, timing)
    reader.sql = BrokenSql()                          # SQL goes away after start
    assert wait_until(lambda: reader.is_revoked("via-redis"), timeout=3.0)
    time.sleep(0.5)                                   # longer than stale_s: Redis kept it fresh
    assert reader.is_revoked("someone-else") is False
    writer.close()
    reader.close()
