"""JWT signing and verification shared by both hubs (DESIGN.md §6).

HS256 by default with a secret from the environment or a 0600 file under the data dir (created on first
start). Claims: ``sub``, ``iat``, ``exp``, ``jti``, ``scope`` (list of agent names or ``"*"``), ``iss``, ``aud``.
``alg: none``, a wrong key, an expired or not-yet-valid token, a missing claim, a token for another hub
(``aud``), one whose lifetime (``exp - iat``) exceeds ``max_lifetime_s`` and a revoked ``jti`` are refused
with ``Unauthorized``. A hub accepts tokens whose ``aud`` names it or ``ALL_HUBS`` (what operator tokens minted
from the secret file by hubctl carry). Revocation is a callable supplied by the hub; it must answer from
memory (it runs on the router thread): MemoryHub's list is refreshed by a background poll, other hubs'
by ``bus.revocations``.
"""
from __future__ import annotations

import os
import secrets
import threading
import time
import uuid
from collections import OrderedDict
from pathlib import Path
from collections.abc import Callable, Iterable
from typing import Any

import jwt

from bus.errors import Unauthorized
from bus.handler import Principal

SECRET_FILE_NAME = "jwt.secret"
ALL_HUBS = "all-hubs"     # the audience of operator tokens: accepted by every hub sharing the secret


def secret_path(data_dir: str | os.PathLike[str], configured: str = "") -> Path:
    return Path(configured) if configured else Path(data_dir) / SECRET_FILE_NAME


def load_or_create_secret(path: Path) -> bytes:
    """Read the signing secret, creating it (mode 0600) when absent."""
    if path.exists():
        mode = path.stat().st_mode & 0o777
        if mode & 0o077:
            os.chmod(path, 0o600)
        secret = path.read_bytes().strip()
        if len(secret) < 32:
            raise ValueError(f"secret file {path} is too short (need at least 32 bytes)")
        return secret
    path.parent.mkdir(parents=True, exist_ok=True)
    secret = secrets.token_hex(32).encode()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, secret + b"\n")
    finally:
        os.close(fd)
    return secret


def read_secret(path: Path) -> bytes:
    if not path.exists():
        raise FileNotFoundError(f"no secret file at {path}: start the hub once, or pass the secret in HUB_JWT_SECRET")
    return path.read_bytes().strip()


class TokenService:
    def __init__(self, secret: bytes | str, *, algorithm: str = "HS256", issuer: str = "voice-hubs",
                 ttl_s: int = 86400, leeway_s: int = 5, public_key: bytes | str | None = None,
                 is_revoked: Callable[[str], bool] | None = None, cache_size: int = 4096,
                 revocation_recheck_s: float = 1.0, audience: str | None = None,
                 mint_audiences: Iterable[str] = (), max_lifetime_s: int | None = None):
        if algorithm.lower() == "none":
            raise ValueError("algorithm 'none' is not allowed")
        self._signing_key = secret
        self._verify_key = public_key if public_key is not None else secret
        self.algorithm = algorithm
        self.issuer = issuer
        self.ttl_s = ttl_s
        self.leeway_s = leeway_s
        self.is_revoked = is_revoked
        self.audience = audience
        self.mint_audiences = list(mint_audiences) or ([audience] if audience else [ALL_HUBS])
        self.max_lifetime_s = max_lifetime_s
        # Verified tokens are cached (a signature check costs tens of microseconds on every request);
        # revocation is re-asked at most every `revocation_recheck_s`, and `forget` drops a token at once.
        self._cache: OrderedDict[str, tuple[Principal, float]] = OrderedDict()
        self._cache_size = cache_size
        self._recheck_s = revocation_recheck_s
        self._lock = threading.Lock()

    def mint(self, subject: str, scopes: Iterable[str] = ("*",), ttl_s: int | None = None,
             extra: dict[str, Any] | None = None) -> tuple[str, dict[str, Any]]:
        now = int(time.time())
        ttl = int(ttl_s or self.ttl_s)
        if self.max_lifetime_s:
            ttl = min(ttl, int(self.max_lifetime_s))
        claims = {"sub": subject, "iat": now, "nbf": now, "exp": now + ttl, "jti": uuid.uuid4().hex,
                  "scope": list(scopes), "iss": self.issuer, "aud": list(self.mint_audiences)}
        claims.update(extra or {})
        return jwt.encode(claims, self._signing_key, algorithm=self.algorithm), claims

    def verify(self, token: str) -> Principal:
        if not token:
            raise Unauthorized("missing token")
        cached = self._cached(token)
        if cached is not None:
            return cached
        principal = self._verify_uncached(token)
        with self._lock:
            self._cache[token] = (principal, time.monotonic())
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return principal

    def forget(self, token_id: str) -> None:
        """Drop cached verifications of a token (after logout/revocation)."""
        with self._lock:
            for key in [k for k, (p, _) in self._cache.items() if p.token_id == token_id]:
                del self._cache[key]

    def _cached(self, token: str) -> Principal | None:
        entry = self._cache.get(token)      # one step under the GIL: no lock for the read every request makes
        if entry is None:
            return None
        principal, checked_at = entry
        if principal.expires_at is not None and time.time() > principal.expires_at + self.leeway_s:
            with self._lock:
                self._cache.pop(token, None)
            raise Unauthorized("token expired")
        if self.is_revoked is not None and time.monotonic() - checked_at > self._recheck_s:
            if self.is_revoked(principal.token_id or ""):
                with self._lock:
                    self._cache.pop(token, None)
                raise Unauthorized("token revoked")
            with self._lock:
                self._cache[token] = (principal, time.monotonic())
        return principal

    def _verify_uncached(self, token: str) -> Principal:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise Unauthorized(f"malformed token: {exc}") from exc
        if str(header.get("alg", "")).lower() != self.algorithm.lower():
            raise Unauthorized(f"token algorithm {header.get('alg')!r} not accepted")
        try:
            claims = jwt.decode(token, self._verify_key, algorithms=[self.algorithm], issuer=self.issuer,
                                leeway=self.leeway_s,
                                audience=[self.audience, ALL_HUBS] if self.audience else None,
                                options={"require": ["sub", "iat", "exp", "jti"],
                                         "verify_aud": self.audience is not None})
        except jwt.ExpiredSignatureError as exc:
            raise Unauthorized("token expired") from exc
        except jwt.ImmatureSignatureError as exc:
            raise Unauthorized("token not yet valid") from exc
        except jwt.InvalidSignatureError as exc:
            raise Unauthorized("token signature invalid") from exc
        except jwt.InvalidAudienceError as exc:
            raise Unauthorized(f"token is not for this hub ({self.audience})") from exc
        except jwt.MissingRequiredClaimError as exc:
            message = "token has no audience (aud)" if exc.claim == "aud" else f"invalid token: {exc}"
            raise Unauthorized(message) from exc
        except jwt.PyJWTError as exc:
            raise Unauthorized(f"invalid token: {exc}") from exc
        lifetime = _number(claims["exp"]) - _number(claims["iat"])
        if self.max_lifetime_s and lifetime > self.max_lifetime_s + self.leeway_s:
            raise Unauthorized(f"token lifetime {lifetime:.0f}s exceeds the maximum {self.max_lifetime_s}s")
        if self.is_revoked is not None and self.is_revoked(claims["jti"]):
            raise Unauthorized("token revoked")
        scope = claims.get("scope", [])
        scopes = tuple(scope.split()) if isinstance(scope, str) else tuple(str(s) for s in scope)
        return Principal(subject=str(claims["sub"]), scopes=scopes, token_id=claims["jti"],
                         expires_at=float(claims["exp"]), claims=claims)


def _number(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise Unauthorized("token claims iat/exp must be numbers")
    return float(value)
