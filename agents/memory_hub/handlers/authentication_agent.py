"""AuthenticationAgent: legacy-protocol.md §2.7 (7116/8116), users in SQL, JWT sessions, logout by jti.

Legacy port (JSON, flat fields; replies exactly as the legacy agent):
  register{user_id,password}   -> {status:"success", message:"User registered successfully"}
  login{user_id,password}      -> {status:"success", message:"Login successful", session:{token, expires_at: iso}}
                                  (token: a JWT of the hub's TokenService with the user's scopes)
  logout{token}                -> {status:"success", message:"Logout successful"}
  validate_token{token}        -> {status:"success", valid: bool}
  health_check                 -> base health + {status:"ok", agent_type:"authentication", active_sessions,
                                  registered_users, cleanup_thread_alive, uptime_seconds}
  errors                       -> {status:"error", message}: "Missing user_id or password", "User already exists",
                                  "Invalid user_id or password" (legacy said "User not found" or "Invalid
                                  password", which told which users exist), "user_id is too long (max 128)",
                                  "password is too long/short", "Missing token", "Invalid token",
                                  "Too many login attempts, retry later", "Too many registrations, retry later",
                                  "Unknown action: X"
  Limits (the same as native, see agents/memory_hub/auth.py): lengths, password policy, per-peer windows for
  register and login, a cap on concurrent scrypt work.
Legacy health port: the same health reply for any message.

Native (agent "AuthenticationAgent"):
  register{user_id,password,scopes?}  -> {user_id, scopes}         (conflict if the user exists)
  login{user_id,password,ttl_s?}      -> {token, token_type:"Bearer", sub, scopes, expires_at, expires_at_iso}
                                         PUBLIC (no token needed); rate-limited: busy + retry_after_ms;
                                         wrong user or password -> unauthorized "invalid user_id or password"
  logout{token?}                      -> {revoked: jti, expires_at}  (default: the caller's own token)
                                         PUBLIC: holding a token is the right to revoke it
  verify{token}                       -> {valid, sub, scopes, exp} or {valid:false, reason}   PUBLIC
Routes: POST /auth/login -> login, POST /auth/verify -> verify, POST /auth/logout -> logout.
"""
from __future__ import annotations

import contextlib
import time
from datetime import datetime
from typing import Any

from agents.memory_hub.auth import (AuthAgentSettings, LoginLimiter, PasswordGate, RevocationList, UserStore,
                                    check_credentials_shape)
from bus.errors import BadRequest, Forbidden, HubError, Unauthorized, Unavailable
from bus.handler import CallContext, Handler, Principal, Route, action, base_legacy_health
from bus.legacy import LegacyCall, LegacyTable, LegacyVocabulary
from bus.tokens import TokenService
from schemas.memory_hub import authentication_agent as schema

class AuthenticationAgent(Handler):
    name = "AuthenticationAgent"
    legacy_ports = (7116,)
    legacy_health_ports = (8116,)
    legacy_vocabulary = LegacyVocabulary(missing_action="", null_action="",
                                         not_an_object="Internal server error: '{type}' object has no attribute 'get'")
    routes = (
        Route("POST", "/auth/login", "login"),
        Route("POST", "/auth/verify", "verify"),
        Route("POST", "/auth/logout", "logout"),
    )

    def __init__(self, section: AuthAgentSettings, revocations: RevocationList, sql: Any = None,
                 tokens: TokenService | None = None):
        """``revocations``: the hub's list (its token service checks it too); ``tokens`` mints and verifies."""
        self.settings = section
        self.tokens = tokens
        self.users = UserStore(sql, section) if sql is not None else None
        self.revocations = revocations
        self.limiter = LoginLimiter(section)
        self.password_gate = PasswordGate(self.settings.max_concurrent_password_checks)
        self.started_at = time.time()

    # ------------------------------------------------------------------ domain
    def register(self, user_id: Any, password: Any, scopes: list[str] | None = None,
                 peer: str | None = None) -> list[str]:
        check_credentials_shape(user_id, password, self.settings.password_min_len)
        self.limiter.check_register(peer)
        granted = list(self.settings.default_scopes) if scopes is None else list(scopes)
        with self.password_gate.slot():
            self._user_store().create(user_id, password, granted)
        return granted

    def login(self, user_id: Any, password: Any, peer: str | None = None,
              ttl_s: int | None = None) -> tuple[str, dict]:
        check_credentials_shape(user_id, password)
        self.limiter.check(user_id, peer)
        with self.password_gate.slot():
            scopes = self._user_store().authenticate(user_id, password)
        ttl = min(int(ttl_s or self.settings.session_ttl_s), self.settings.session_ttl_s)
        token, claims = self._tokens().mint(user_id, scopes=scopes, ttl_s=ttl)
        with contextlib.suppress(Unavailable):   # the session count in the health reply is informational
            self.revocations.remember_session(claims["jti"], user_id, claims["exp"])
        return token, claims

    def logout(self, token: Any) -> Principal:
        if not token or not isinstance(token, str):
            raise BadRequest("Missing token")
        principal = self.check_token(token)
        self.revoke(principal)
        return principal

    def revoke(self, principal: Principal) -> None:
        jti = principal.token_id or ""
        exp = principal.expires_at or time.time() + self._tokens().ttl_s
        try:
            self.revocations.revoke(jti, exp, principal.subject)
        finally:
            forget = getattr(self._tokens(), "forget", None)
            if forget is not None:
                forget(jti)

    def check_token(self, token: str) -> Principal:
        try:
            return self.verified(token)
        except Unauthorized as exc:
            raise Unauthorized("Invalid token", details={"reason": exc.message}) from exc

    def verified(self, token: str) -> Principal:
        """Signature, claims, expiry, and this hub's revocation list (whatever the token service checks)."""
        principal = self._tokens().verify(token)
        if self.revocations.is_revoked(principal.token_id or ""):
            raise Unauthorized("token revoked")
        return principal

    def _user_store(self) -> UserStore:
        if self.users is None:
            raise Unavailable("user store (SQL) is not configured")
        return self.users

    def _tokens(self) -> Any:
        if self.tokens is None:
            raise Unavailable("token service is not configured")
        return self.tokens

    # ------------------------------------------------------------------ native
    @action(schema.REGISTER, name="register")
    def register_user(self, args: dict, ctx: CallContext) -> dict:
        """Create a user (scopes default to auth_agent.default_scopes)."""
        scopes = args["scopes"]
        if scopes is not None and ctx.principal is not None and "*" not in ctx.principal.scopes:
            beyond = sorted(set(scopes) - set(ctx.principal.scopes))
            if beyond:
                raise Forbidden(f"cannot grant scopes the caller does not hold: {beyond}")
        granted = self.register(args["user_id"], args["password"], scopes)   # a token holder: not per-peer limited
        return {"user_id": args["user_id"], "scopes": granted}

    @action(schema.LOGIN, name="login", public=True)
    def login_action(self, args: dict, ctx: CallContext) -> dict:
        """Public: exchange user_id/password for a JWT (rate-limited per user and per peer)."""
        try:
            token, claims = self.login(args["user_id"], args["password"], ctx.peer, args["ttl_s"])
        except Unauthorized as exc:
            raise Unauthorized("invalid user_id or password") from exc
        return {"token": token, "token_type": "Bearer", "sub": claims["sub"], "scopes": claims["scope"],
                "expires_at": claims["exp"], "expires_at_iso": _iso(claims["exp"])}

    @action(schema.LOGOUT, name="logout", public=True)
    def logout_action(self, args: dict, ctx: CallContext) -> dict:
        """Public (holding a token is the right to revoke it): revoke the given token, or the caller's own."""
        if args["token"]:
            principal = self.logout(args["token"])
        elif ctx.principal is not None and ctx.principal.token_id:
            principal = ctx.principal
            self.revoke(principal)
        else:
            raise BadRequest("missing field 'token'", details={"field": "token"})
        return {"revoked": principal.token_id, "expires_at": principal.expires_at}

    @action(schema.VERIFY, name="verify", public=True)
    def verify_action(self, args: dict, ctx: CallContext) -> dict:
        """Public: {valid, sub, scopes, exp} for a valid token, {valid: false, reason} otherwise."""
        try:
            principal = self.verified(args["token"])
        except Unauthorized as exc:
            return {"valid": False, "reason": exc.message}
        return {"valid": True, "sub": principal.subject, "scopes": list(principal.scopes),
                "exp": principal.expires_at}

    # ------------------------------------------------------------------ legacy
    def handle_legacy_from(self, request: Any, port: int, peer: str | None) -> dict:
        return self.legacy_reply(request, LegacyCall(port, peer))

    def legacy_table(self, call: LegacyCall) -> LegacyTable:
        return LegacyTable({"register": lambda r: self._legacy_register(r, call.peer),
                            "login": lambda r: self._legacy_login(r, call.peer),
                            "logout": self._legacy_logout, "validate_token": self._legacy_validate,
                            "health_check": lambda _r: self.legacy_health(0)})

    def _legacy_register(self, request: dict, peer: str | None) -> dict:
        self.register(request.get("user_id"), request.get("password"), peer=peer)
        return {"status": "success", "message": "User registered successfully"}

    def _legacy_login(self, request: dict, peer: str | None) -> dict:
        token, claims = self.login(request.get("user_id"), request.get("password"), peer)
        return {"status": "success", "message": "Login successful",
                "session": {"token": token, "expires_at": _iso(claims["exp"])}}

    def _legacy_logout(self, request: dict) -> dict:
        self.logout(request.get("token"))
        return {"status": "success", "message": "Logout successful"}

    def _legacy_validate(self, request: dict) -> dict:
        token = request.get("token")
        if not token or not isinstance(token, str):
            raise BadRequest("Missing token")
        try:
            self.verified(token)
        except Unauthorized:
            return {"status": "success", "valid": False}
        return {"status": "success", "valid": True}

    def legacy_health(self, port: int) -> dict:
        return base_legacy_health(self.name, self.started_at, status="ok", agent_type="authentication",
                                  active_sessions=self.revocations.active_sessions(),
                                  registered_users=self._user_count(), cleanup_thread_alive=True,
                                  uptime_seconds=time.time() - self.started_at)

    def _user_count(self) -> int | None:
        try:
            return self.users.count() if self.users is not None else None
        except HubError:
            return None

    def health_checks(self) -> dict[str, tuple[bool, Any]]:
        return {"auth_users": (self.users is not None, "users in SQL" if self.users else "no SQL store")}


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(float(epoch)).isoformat()
