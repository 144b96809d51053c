"""AuthenticationAgent domain: password hashing, users, token revocation and the login rate limiter.

* Passwords: ``hashlib.scrypt`` with a per-user random 16-byte salt; the parameters are stored with the
  hash (``scrypt$n$r$p$salt$hash``, base64), so they can be raised later without breaking old hashes
  (a login with old parameters re-hashes the password). Comparison is constant-time; a login for an
  unknown user still runs one scrypt so timing does not tell which users exist.
* Users live in SQL (``users``: user_id, password_hash, scopes, disabled, created_at, last_login_at).
* Revocation (logout): the ``revoked_tokens`` SQL table is the truth (written first, so an acknowledged
  logout survives anything), ``auth:revoked:<jti>`` in Redis db3 (TTL until the token's ``exp`` plus the
  verification leeway) a copy, and an ``auth.revoked`` event ({jti, exp}: ids only) tells other hubs at once
  (the live set is republished every ``revocation_republish_s`` for subscribers that were away).
  ``is_revoked`` runs on the router thread and so answers from memory only: every revocation this process
  made, loaded at start, or found by a background refresh of SQL every ``revocation_poll_s`` (another process
  sharing the database; Redis when SQL cannot answer). When both have failed for ``revocation_stale_s`` the
  check fails closed (``Unavailable``), unless ``revocation_fail_open`` is set; a slow or stopped Redis never
  delays a request.
* Login attempts: a sliding window per user id and per peer address, in memory (per hub process); the same
  per peer for registrations (legacy ``register`` needs no token). Both ports share these limits.
* Input policy (both ports): user ids up to 128 characters, passwords from ``password_min_len`` to 1024
  bytes; a login never says whether the user or the password was wrong. At most
  ``max_concurrent_password_checks`` scrypt computations run at once; more are refused (busy) instead of
  queued, so password work cannot take every worker thread from the rest of the hub.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import os
import threading
import time
from collections import OrderedDict, deque
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from collections.abc import Callable, Iterable, Iterator

from sqlalchemy import delete, select

from bus.errors import BadRequest, Busy, Conflict, Unauthorized, Unavailable
from bus.log import get_logger
from bus.periodic import PeriodicTask
from bus.revocations import REVOKED_TOPIC
from bus.settings import SettingError, setting
from agents.memory_hub.stores.sql_models import RevokedToken

log = get_logger("memory_hub.auth")

@dataclass(frozen=True)
class AuthAgentSettings:
    """The ``auth_agent`` section."""

    default_scopes: tuple[str, ...] = setting(
        (), doc="scopes of users created by legacy `register` (and native, unless given)")
    session_ttl_s: int = setting(86400, minimum=1, doc="lifetime of the JWT returned by login (legacy: 24 h)")
    scrypt_n: int = setting(16384, minimum=2, maximum=1 << 24,
                            doc="scrypt cost (2**14), block size and parallelism for new hashes")
    scrypt_r: int = setting(8, minimum=1, maximum=1024)
    scrypt_p: int = setting(1, minimum=1, maximum=1024)
    login_window_s: float = setting(60.0, minimum=0.001, doc="sliding window of the login rate limiter")
    login_max_per_user: int = setting(10, minimum=1, doc="attempts per user id per window")
    login_max_per_peer: int = setting(30, minimum=1,
                                      doc="attempts per peer address per window (when the transport knows it)")
    register_max_per_peer: int = setting(10, minimum=1, doc="registrations per peer address per login_window_s")
    password_min_len: int = setting(8, minimum=0, maximum=1024,
                                    doc="new passwords (register); existing users still log in")
    max_concurrent_password_checks: int = setting(2, minimum=1, maximum=1024,
                                                  doc="scrypt computations at once; more -> busy")
    revocation_fail_open: bool = setting(
        False, doc="refresh failing for revocation_stale_s: False = refuse tokens, True = memory")
    revocation_poll_s: float = setting(0.5, minimum=0.01, maximum=3600.0,
                                       doc="background refresh of the in-memory list from SQL (Redis without SQL)")
    revocation_stale_s: float = setting(10.0, minimum=0.0, doc="refresh failing this long: the list is stale")
    revocation_republish_s: float = setting(30.0, minimum=0.0,
                                            doc="republish every live revocation on the events port (auth.revoked)")

    def __post_init__(self) -> None:
        if self.scrypt_n & (self.scrypt_n - 1):
            raise SettingError("scrypt_n", f"must be a power of 2, got {self.scrypt_n}")

HASH_SCHEME = "scrypt"
SALT_BYTES = 16
KEY_BYTES = 32
MAX_PASSWORD_BYTES = 1024
MAX_USER_ID_CHARS = 128
BAD_CREDENTIALS = "Invalid user_id or password"
_DUMMY_SALT = b"\x00" * SALT_BYTES


# --------------------------------------------------------------------------------------------- passwords

def hash_password(password: str, *, n: int = 16384, r: int = 8, p: int = 1) -> str:
    """``scrypt$n$r$p$<salt b64>$<key b64>`` for a fresh random salt."""
    salt = os.urandom(SALT_BYTES)
    key = _scrypt(password, salt, n, r, p)
    return "$".join((HASH_SCHEME, str(n), str(r), str(p), _b64(salt), _b64(key)))


def verify_password(password: str, stored: str) -> bool:
    """Constant-time check of ``password`` against a stored ``hash_password`` string."""
    try:
        scheme, n, r, p, salt, key = stored.split("$")
        if scheme != HASH_SCHEME:
            return False
        expected = base64.b64decode(key)
        actual = _scrypt(password, base64.b64decode(salt), int(n), int(r), int(p), len(expected))
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(actual, expected)


def hash_parameters(stored: str) -> tuple[int, int, int] | None:
    parts = stored.split("$")
    if len(parts) != 6 or parts[0] != HASH_SCHEME:
        return None
    return int(parts[1]), int(parts[2]), int(parts[3])


def burn_password_check(password: str, n: int, r: int, p: int) -> None:
    """The cost of one verification, for unknown users (no timing oracle on user existence)."""
    _scrypt(password, _DUMMY_SALT, n, r, p)


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int, dklen: int = KEY_BYTES) -> bytes:
    return hashlib.scrypt(password.encode("utf-8", "surrogatepass"), salt=salt, n=n, r=r, p=p,
                          maxmem=256 * r * n + 1024 * 1024, dklen=dklen)


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


# --------------------------------------------------------------------------------------------- users

class UserStore:
    """Users in SQL; ``sql`` is an ``agents.memory_hub.stores.sql.SqlStore``."""

    def __init__(self, sql: Any, settings: AuthAgentSettings):
        self.sql = sql
        self.n, self.r, self.p = settings.scrypt_n, settings.scrypt_r, settings.scrypt_p

    def create(self, user_id: str, password: str, scopes: Iterable[str]) -> None:
        from agents.memory_hub.stores.sql_models import User

        password_hash = hash_password(password, n=self.n, r=self.r, p=self.p)
        with self.sql.transaction() as session:
            if session.get(User, user_id) is not None:
                raise Conflict("User already exists")
            session.add(User(user_id=user_id, password_hash=password_hash, scopes=list(scopes)))

    def authenticate(self, user_id: str, password: str) -> list[str]:
        """The user's scopes, or ``Unauthorized(BAD_CREDENTIALS)`` whichever part was wrong."""
        from agents.memory_hub.stores.sql_models import User

        with self.sql.session() as session:
            user = session.get(User, user_id)
            stored = None if user is None or user.disabled else user.password_hash
            scopes = list(user.scopes or []) if user is not None else []
        if stored is None:
            burn_password_check(password, self.n, self.r, self.p)
            raise Unauthorized(BAD_CREDENTIALS)
        if not verify_password(password, stored):
            raise Unauthorized(BAD_CREDENTIALS)
        self._after_login(user_id, password, stored)
        return scopes

    def _after_login(self, user_id: str, password: str, stored: str) -> None:
        from agents.memory_hub.stores.sql_models import User

        rehash = hash_parameters(stored) != (self.n, self.r, self.p)
        new_hash = hash_password(password, n=self.n, r=self.r, p=self.p) if rehash else None
        with self.sql.transaction() as session:
            user = session.get(User, user_id)
            if user is not None:
                user.last_login_at = time.time()
                if new_hash:
                    user.password_hash = new_hash

    def count(self) -> int:
        from sqlalchemy import func, select

        from agents.memory_hub.stores.sql_models import User

        with self.sql.session() as session:
            return int(session.execute(select(func.count()).select_from(User)).scalar_one())


# --------------------------------------------------------------------------------------------- revocation

class RevocationList:
    """Revoked token ids, answered from memory; SQL is the truth, Redis db3 a copy (see the module docstring)."""

    KEY = "revoked:"
    SESSION_KEY = "session:"

    def __init__(self, redis_store: Any, settings: AuthAgentSettings, leeway_s: float = 5.0, sql: Any = None,
                 publish: Callable[[str, dict], None] | None = None):
        self.redis_store = redis_store
        self.sql = sql
        self.publish = publish
        self.fail_open = settings.revocation_fail_open
        self.stale_s = settings.revocation_stale_s
        self.republish_s = settings.revocation_republish_s
        self.leeway_s = float(leeway_s)
        self._known: dict[str, float] = {}     # jti -> exp (epoch)
        self._lock = threading.Lock()
        self._fresh_at = time.monotonic()      # last time memory was known to hold every revocation
        self._published_at = 0.0
        self._watermark = 0.0                  # revoked_at of the newest SQL row seen
        self._failing: set[str] = set()        # sources whose failure was logged (until a refresh succeeds)
        self._load_from_sql()
        self._poller = PeriodicTask("revocation-poll", settings.revocation_poll_s, self.refresh)
        if redis_store is not None or sql is not None:
            self._poller.start()

    def revoke(self, jti: str, exp: float, subject: str | None = None) -> None:
        """Remember ``jti`` as revoked until ``exp``: SQL first (the truth), then memory, then the event for
        other hubs, then Redis (best effort: a Redis outage does not undo an acknowledged logout)."""
        if self.sql is not None:
            with self.sql.transaction() as session:
                session.merge(RevokedToken(jti=jti, subject=subject, expires_at=float(exp), revoked_at=time.time()))
        with self._lock:
            self._known[jti] = float(exp)
            self._prune(time.time())
        if self.publish is not None:
            self.publish(REVOKED_TOPIC, {"jti": jti, "exp": float(exp)})
        if self.redis_store is None:
            return
        ttl = max(1.0, float(exp) - time.time() + self.leeway_s)
        try:
            self.redis_store.auth.set(self.KEY + jti, b"1", ttl)
            self.redis_store.auth.delete(self.SESSION_KEY + jti)
        except Unavailable:
            if self.sql is None:
                raise
            log.warning("revocation_not_cached_in_redis", jti=jti)

    def is_revoked(self, jti: str) -> bool:
        """From memory only (this runs on the router thread). When the background refresh has failed for
        ``revocation_stale_s`` the answer may be stale: ``Unavailable`` (fail closed) unless fail-open."""
        with self._lock:
            if jti in self._known:
                return True
            stale = time.monotonic() - self._fresh_at > self.stale_s
        if stale and not self.fail_open:
            raise Unavailable("token revocation list is stale (SQL and Redis unreachable); retry later",
                              retry_after_ms=500)
        return False

    def refresh(self) -> None:
        """Background: new revocations from SQL (from Redis when SQL cannot answer); republish the live set."""
        found = None
        for source in (self._new_from_sql if self.sql is not None else None, self._all_from_redis):
            if source is None:
                continue
            try:
                found = source()
                if source.__name__ in self._failing:
                    log.info("revocation_refresh_recovered", source=source.__name__)
                    self._failing.discard(source.__name__)
                break
            except Exception as exc:   # SQL down: Redis holds a copy of every revocation
                if source.__name__ not in self._failing:      # once per outage, not at every poll
                    log.warning("revocation_refresh_failed", source=source.__name__, error=repr(exc))
                self._failing.add(source.__name__)
        if found is None:
            return
        with self._lock:
            self._known.update(found)
            self._prune(time.time())
            self._fresh_at = time.monotonic()
            live = [{"jti": jti, "exp": exp} for jti, exp in self._known.items()]
        if self.publish is not None and live and time.monotonic() - self._published_at >= self.republish_s:
            self._published_at = time.monotonic()
            self.publish(REVOKED_TOPIC, {"revoked": live[-5000:]})

    def _load_from_sql(self) -> None:
        if self.sql is None:
            return
        now = time.time()
        with self.sql.transaction() as session:
            session.execute(delete(RevokedToken).where(RevokedToken.expires_at + self.leeway_s < now - 86400))
        found = self._new_from_sql()
        with self._lock:
            self._known.update(found)

    def _new_from_sql(self) -> dict[str, float]:
        now = time.time()
        with self.sql.session() as session:
            rows = session.execute(select(RevokedToken.jti, RevokedToken.expires_at, RevokedToken.revoked_at)
                                   .where(RevokedToken.revoked_at >= self._watermark - 5.0)
                                   .where(RevokedToken.expires_at + self.leeway_s >= now)).all()
        for _, _, revoked_at in rows:
            self._watermark = max(self._watermark, float(revoked_at or 0.0))
        return {jti: float(exp) for jti, exp, _ in rows}

    def _all_from_redis(self) -> dict[str, float]:
        if self.redis_store is None:
            raise Unavailable("no Redis configured")
        now = time.time()
        keys = self.redis_store.auth.scan(self.KEY + "*")
        return {str(key).rsplit(self.KEY, 1)[-1]: now + 86400.0 for key in keys}

    def remember_session(self, jti: str, subject: str, exp: float) -> None:
        """Active sessions (for the legacy health reply): ``auth:session:<jti>`` until ``exp``."""
        if self.redis_store is not None:
            self.redis_store.auth.set(self.SESSION_KEY + jti, subject, max(1.0, float(exp) - time.time()))

    def active_sessions(self) -> int | None:
        if self.redis_store is None:
            return None
        try:
            return len(self.redis_store.auth.scan(self.SESSION_KEY + "*"))
        except Unavailable:
            return None

    def close(self) -> None:
        self._poller.stop(2.0)

    def _prune(self, now: float) -> None:
        for jti in [j for j, exp in self._known.items() if exp + self.leeway_s < now]:
            del self._known[jti]


# --------------------------------------------------------------------------------------------- rate limit

class SlidingWindowLimiter:
    """At most ``limit`` hits per ``window_s`` per key, in memory; thread-safe; bounded key count."""

    def __init__(self, limit: int, window_s: float, max_keys: int = 50000,
                 clock: Callable[[], float] = time.monotonic):
        self.limit = int(limit)
        self.window_s = float(window_s)
        self.max_keys = max_keys
        self.clock = clock
        self._hits: OrderedDict[str, deque[float]] = OrderedDict()
        self._lock = threading.Lock()

    def hit(self, key: str) -> float | None:
        """Record one attempt; returns None if allowed, else the seconds until the next one would be."""
        now = self.clock()
        with self._lock:
            hits = self._hits.pop(key, None) or deque()
            while hits and hits[0] <= now - self.window_s:
                hits.popleft()
            self._hits[key] = hits
            if len(self._hits) > self.max_keys:
                self._hits.popitem(last=False)
            if len(hits) >= self.limit:
                return max(0.001, hits[0] + self.window_s - now)
            hits.append(now)
            return None


def check_credentials_shape(user_id: Any, password: Any, min_password_len: int = 1) -> None:
    """Types and lengths, before any hashing (the same limits as the native schemas)."""
    if not user_id or not password or not isinstance(user_id, str) or not isinstance(password, str):
        raise BadRequest("Missing user_id or password")
    if len(user_id) > MAX_USER_ID_CHARS:
        raise BadRequest(f"user_id is too long (max {MAX_USER_ID_CHARS})")
    if len(password.encode("utf-8", "surrogatepass")) > MAX_PASSWORD_BYTES:
        raise BadRequest(f"password is too long (max {MAX_PASSWORD_BYTES} bytes)")
    if len(password) < min_password_len:
        raise BadRequest(f"password is too short (min {min_password_len} characters)")


class PasswordGate:
    """At most ``limit`` scrypt computations at once; one more is refused with ``Busy``, never queued."""

    def __init__(self, limit: int):
        self._slots = threading.BoundedSemaphore(max(1, int(limit)))

    @contextmanager
    def slot(self) -> Iterator[None]:
        if not self._slots.acquire(blocking=False):
            raise Busy(LoginLimiter.MESSAGE, retry_after_ms=200)
        try:
            yield
        finally:
            self._slots.release()


class LoginLimiter:
    """Per-user and per-peer login windows and per-peer registrations; ``Busy`` with ``retry_after_ms``."""

    MESSAGE = "Too many login attempts, retry later"
    REGISTER_MESSAGE = "Too many registrations, retry later"

    def __init__(self, settings: AuthAgentSettings):
        window = settings.login_window_s
        self.per_user = SlidingWindowLimiter(settings.login_max_per_user, window)
        self.per_peer = SlidingWindowLimiter(settings.login_max_per_peer, window)
        self.registrations = SlidingWindowLimiter(settings.register_max_per_peer, window)

    def check_register(self, peer: str | None) -> None:
        wait = self.registrations.hit(peer) if peer else None
        if wait is not None:
            raise Busy(self.REGISTER_MESSAGE, retry_after_ms=int(wait * 1000) + 1)

    def check(self, user_id: str, peer: str | None) -> None:
        waits = [self.per_user.hit(user_id)]
        if peer:
            waits.append(self.per_peer.hit(peer))
        blocked = [w for w in waits if w is not None]
        if blocked:
            raise Busy(self.MESSAGE, retry_after_ms=int(max(blocked) * 1000) + 1)
