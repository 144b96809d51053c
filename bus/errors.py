"""Typed errors raised inside the hubs and their single mapping to wire codes.

Handlers raise these; the bus turns them into ``{"ok": false, "error": {...}}`` at the edge
(``to_wire``). Anything else raised by a handler becomes ``internal`` with a generic message;
the traceback is logged, never sent.
"""
from __future__ import annotations

from typing import Any


class HubError(Exception):
    """Base of every error that has a wire code."""

    code = "internal"
    retryable = False

    def __init__(self, message: str, *, retry_after_ms: int | None = None, details: dict[str, Any] | None = None):
        super().__init__(message)
        self.message = message
        self.retry_after_ms = retry_after_ms
        self.details = details or {}

    def to_wire(self) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.code, "message": self.message, "retryable": self.retryable}
        if self.retry_after_ms is not None:
            error["retry_after_ms"] = self.retry_after_ms
        if self.details:
            error["details"] = self.details
        return error


class BadRequest(HubError):
    code = "bad_request"


class UnknownAction(HubError):
    code = "unknown_action"


class Unauthorized(HubError):
    code = "unauthorized"


class Forbidden(HubError):
    code = "forbidden"


class NotFound(HubError):
    code = "not_found"


class Conflict(HubError):
    code = "conflict"


class TooLarge(HubError):
    code = "too_large"


class Busy(HubError):
    code = "busy"
    retryable = True

    def __init__(self, message: str = "queue full, retry later", *, retry_after_ms: int = 50,
                 details: dict[str, Any] | None = None):
        super().__init__(message, retry_after_ms=retry_after_ms, details=details)


class Timeout(HubError):
    code = "timeout"
    retryable = True


class Unavailable(HubError):
    code = "unavailable"
    retryable = True


class Internal(HubError):
    code = "internal"


ERROR_CODES = tuple(
    cls.code
    for cls in (BadRequest, UnknownAction, Unauthorized, Forbidden, NotFound, Conflict, TooLarge, Busy, Timeout,
                Unavailable, Internal)
)

HTTP_STATUS = {
    "bad_request": 400, "unknown_action": 404, "unauthorized": 401, "forbidden": 403, "not_found": 404,
    "conflict": 409, "too_large": 413, "busy": 429, "timeout": 504, "unavailable": 503, "internal": 500,
}


def error_from_wire(error: dict[str, Any]) -> HubError:
    """Rebuild a typed error from a wire error map (used by the client)."""
    code = error.get("code", "internal")
    for cls in HubError.__subclasses__():
        if cls.code == code:
            err = cls.__new__(cls)
            HubError.__init__(err, str(error.get("message", code)), retry_after_ms=error.get("retry_after_ms"),
                              details=error.get("details"))
            return err
    return Internal(str(error.get("message", code)))
