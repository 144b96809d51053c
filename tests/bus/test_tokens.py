"""TokenService unit behaviour: claims, refusal of forged tokens, the verification cache and revocation."""
from __future__ import annotations

import time

import jwt
import pytest

from bus.errors import Unauthorized
from bus.tokens import TokenService, load_or_create_secret

SECRET = b"s" * 64


def test_secret_file_is_created_0600_and_reused(tmp_path):
    path = tmp_path / "jwt.secret"
    first = load_or_create_secret(path)
    assert path.stat().st_mode & 0o777 == 0o600
    assert load_or_create_secret(path) == first and len(first) >= 32


def test_minted_token_verifies_with_scopes():
    service = TokenService(SECRET)
    token, claims = service.mint("alice", scopes=["CacheManager"])
    principal = service.verify(token)
    assert principal.subject == "alice" and principal.scopes == ("CacheManager",)
    assert principal.may_call("CacheManager") and not principal.may_call("KnowledgeBase")
    assert {"sub", "iat", "exp", "jti"} <= set(claims)


@pytest.mark.parametrize("forge", ["none", "wrong_key", "expired", "no_exp", "future"])
def test_forged_tokens_are_refused(forge):
    service = TokenService(SECRET)
    now = int(time.time())
    claims = {"sub": "mallory", "iat": now, "exp": now + 60, "jti": "j", "iss": "voice-hubs", "scope": ["*"]}
    if forge == "none":
        token = jwt.encode(claims, None, algorithm="none")
    elif forge == "wrong_key":
        token = jwt.encode(claims, b"k" * 64, algorithm="HS256")
    elif forge == "expired":
        token = jwt.encode({**claims, "exp": now - 3600}, SECRET, algorithm="HS256")
    elif forge == "no_exp":
        token = jwt.encode({k: v for k, v in claims.items() if k != "exp"}, SECRET, algorithm="HS256")
    else:
        token = jwt.encode({**claims, "nbf": now + 3600}, SECRET, algorithm="HS256")
    with pytest.raises(Unauthorized):
        service.verify(token)


def test_revocation_is_seen_after_the_recheck_interval_and_at_once_after_forget():
    revoked: set[str] = set()
    service = TokenService(SECRET, is_revoked=revoked.__contains__, revocation_recheck_s=0.05)
    token, claims = service.mint("bob")
    service.verify(token)
    revoked.add(claims["jti"])
    time.sleep(0.1)
    with pytest.raises(Unauthorized, match="revoked"):
        service.verify(token)
    other, other_claims = service.mint("carol")
    service.verify(other)
    revoked.add(other_claims["jti"])
    service.forget(other_claims["jti"])
    with pytest.raises(Unauthorized, match="revoked"):
        service.verify(other)


def test_cached_token_still_expires():
    service = TokenService(SECRET, leeway_s=0)
    token, _ = service.mint("dave", ttl_s=1)
    service.verify(token)
    time.sleep(2.1)
    with pytest.raises(Unauthorized, match="expired"):
        service.verify(token)


def test_audience_and_maximum_lifetime():
    memory = TokenService(SECRET, audience="memory_hub", mint_audiences=["memory_hub", "model_manager_suite"],
                          max_lifetime_s=3600)
    suite = TokenService(SECRET, audience="model_manager_suite")
    other = TokenService(SECRET, audience="elsewhere")
    token, claims = memory.mint("alice", ttl_s=10 * 86400)
    assert claims["exp"] - claims["iat"] == 3600                   # minting is capped too
    assert suite.verify(token).subject == "alice"
    with pytest.raises(Unauthorized, match="not for this hub"):
        other.verify(token)
    operator = TokenService(SECRET).mint("ops")[0]                 # hubctl: aud all-hubs
    assert other.verify(operator).subject == "ops"
    long_lived = TokenService(SECRET).mint("ops", ttl_s=7200)[0]
    with pytest.raises(Unauthorized, match="lifetime"):
        memory.verify(long_lived)


def test_bus_revocations_persist_0600_and_expire(tmp_path):
    from bus.revocations import Revocations

    path = tmp_path / "revoked_tokens.jsonl"
    revocations = Revocations(path)
    assert revocations.add("j1", time.time() + 600) and not revocations.add("j1", time.time() + 600)
    assert not revocations.add("old", time.time() - 3600)         # already expired: nothing to remember
    assert path.stat().st_mode & 0o777 == 0o600
    reloaded = Revocations(path)
    assert reloaded.is_revoked("j1") and not reloaded.is_revoked("old")
