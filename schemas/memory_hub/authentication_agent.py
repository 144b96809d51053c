"""Request schemas of AuthenticationAgent's native actions (see the handler's module docstring)."""
from __future__ import annotations

from schemas.base import Field, Schema

USER_ID = Field(str, required=True, min_len=1, max_len=128, doc="user id (legacy `user_id`)")
PASSWORD = Field(str, required=True, min_len=1, max_len=1024, doc="password (hashed with scrypt, never stored)")
TOKEN = Field(str, required=True, min_len=1, max_len=8192, doc="a JWT returned by login")

REGISTER = Schema({
    "user_id": USER_ID,
    "password": PASSWORD,
    "scopes": Field(list, item=Field(str, min_len=1, max_len=128), max_len=64,
                    doc="agent names this user's tokens may call, or ['*']; default: auth_agent.default_scopes"),
}, doc="Create a user; scopes beyond the caller's own are refused.")

LOGIN = Schema({
    "user_id": USER_ID,
    "password": PASSWORD,
    "ttl_s": Field(int, min=1, max=30 * 86400, doc="token lifetime, at most auth_agent.session_ttl_s"),
}, doc="Public: exchange a password for a JWT carrying the user's scopes (rate-limited).")

LOGOUT = Schema({
    "token": Field(str, min_len=1, max_len=8192, doc="token to revoke; default: the caller's own token"),
}, doc="Public: revoke a token (the given one, or the envelope's) by its jti until it expires.")

VERIFY = Schema({"token": TOKEN}, doc="Public: is this token valid (signature, expiry, revocation)?")
