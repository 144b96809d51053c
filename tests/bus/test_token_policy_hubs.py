"""Token policy on both hubs (issue 18 point 4, and the auth part of issue 16), with real processes:
``aud`` per hub, a maximum lifetime, logout on the suite, a MemoryHub logout obeyed by the suite within 1 s
through the ``auth.revoked`` event, and a stopped Redis that does not delay authenticated ``hub.ping``."""
from __future__ import annotations

import os
import signal
import time

import jwt
import pytest

from agents.memory_hub.stores.embedded_redis import EmbeddedRedis
from bus.client import HubClient
from bus.errors import Unauthorized
from tests.support.hubproc import HubProcess, free_offset

SECRET = "shared-secret-" + "x" * 40
SUITE = {"models": {"dirs": []}, "predictive_loader": {"preload_enabled": False}}


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    """MemoryHub and ModelManagerSuite sharing HUB_JWT_SECRET; the suite follows MemoryHub's revocations."""
    base = tmp_path_factory.mktemp("token-policy")
    offset = free_offset()
    memory_events = f"tcp://127.0.0.1:{7310 + offset}"
    env = {"HUB_JWT_SECRET": SECRET}
    memory = HubProcess("memory_hub", base / "memory", offset=offset, env=env,
                        config={"search": {"enabled": False},
                                "auth": {"mint_audiences": ["memory_hub", "model_manager_suite"]}})
    suite = HubProcess("model_manager_suite", base / "suite", offset=offset, env=env,
                       config={**SUITE, "auth": {"revocation_feeds": [memory_events]}})
    with memory, suite:
        yield memory, suite


def mint(audience, ttl_s: int = 600, **extra) -> str:
    now = int(time.time())
    claims = {"sub": "tester", "iat": now, "nbf": now, "exp": now + ttl_s, "jti": os.urandom(8).hex(),
              "scope": ["*"], "iss": "voice-hubs", **extra}
    if audience is not None:
        claims["aud"] = audience
    return jwt.encode(claims, SECRET, algorithm="HS256")


def ping_actions(hub: HubProcess, token: str) -> dict:
    with hub.client(token=token, timeout=10) as client:
        return client.call("hub", "actions")


def login(memory: HubProcess, user: str) -> str:
    with memory.client(token=mint(["all-hubs"])) as admin:
        admin.call("AuthenticationAgent", "register", {"user_id": user, "password": "long-enough", "scopes": ["*"]})
    with memory.client(token=None) as anonymous:
        return anonymous.call("AuthenticationAgent", "login", {"user_id": user, "password": "long-enough"})["token"]


def test_each_hub_accepts_only_tokens_for_it(pair):
    memory, suite = pair
    for_memory = mint(["memory_hub"])
    assert ping_actions(memory, for_memory)["actions"]
    with pytest.raises(Unauthorized, match="not for this hub"):
        ping_actions(suite, for_memory)
    with pytest.raises(Unauthorized, match="audience"):
        ping_actions(suite, mint(None))                       # no aud at all
    assert ping_actions(suite, mint("model_manager_suite"))["actions"]
    assert ping_actions(suite, mint(["all-hubs"]))["actions"]   # operator tokens (hubctl token)


def test_tokens_longer_than_the_maximum_lifetime_are_refused(pair):
    memory, suite = pair
    for hub in (memory, suite):
        with pytest.raises(Unauthorized, match="lifetime"):
            ping_actions(hub, mint(["all-hubs"], ttl_s=30 * 86400))


def test_logout_on_the_suite(pair):
    _, suite = pair
    token = mint(["model_manager_suite"])
    assert ping_actions(suite, token)["actions"]
    with suite.client(token=token) as client:
        assert client.call("hub", "logout", {})["revoked"]
    with pytest.raises(Unauthorized, match="revoked"):
        ping_actions(suite, token)


def test_hub_logout_on_memory_hub_uses_its_revocation_list(pair):
    memory, _suite = pair
    token = login(memory, "leaver")
    with memory.client(token=token) as client:
        assert client.call("hub", "logout", {})["revoked"]
    with memory.client(token=None) as anonymous:
        assert anonymous.call("AuthenticationAgent", "verify", {"token": token})["valid"] is False


def test_memory_hub_logout_is_refused_on_the_suite_within_a_second(pair):
    memory, suite = pair
    token = login(memory, "roamer")
    assert ping_actions(suite, token)["actions"]               # MemoryHub's login token names the suite too
    with memory.client(token=None) as anonymous:
        anonymous.call("AuthenticationAgent", "logout", {"token": token})
    refused_at = None
    started = time.monotonic()
    while time.monotonic() - started < 1.0:
        try:
            ping_actions(suite, token)
        except Unauthorized:
            refused_at = time.monotonic() - started
            break
        time.sleep(0.02)
    assert refused_at is not None, "the suite still accepted a token logged out on MemoryHub after 1 s"


def test_a_stopped_redis_does_not_delay_authenticated_ping(tmp_path):
    redis_server = EmbeddedRedis(tmp_path / "redis")
    url = redis_server.start()
    try:
        with HubProcess("memory_hub", tmp_path / "hub", config={"storage": {"redis_url": url},
                                                                "search": {"enabled": False}}) as hub:
            tokens = [hub.token(subject=f"s{i}") for i in range(6)]
            with hub.client(token=tokens[0]) as client:
                client.call("hub", "ping")
            os.kill(redis_server.pid, signal.SIGSTOP)         # Redis accepts connections and never answers
            try:
                for i in range(12):                          # across the token cache's revocation recheck
                    token = tokens[i % len(tokens)]
                    with HubClient(hub.endpoint, token=token, timeout=0.15) as fast:
                        assert fast.call("hub", "ping")["pong"] is True
                    time.sleep(0.3)
            finally:
                os.kill(redis_server.pid, signal.SIGCONT)
    finally:
        redis_server.stop()
