"""What a hub reports to the ErrorBus, as the legacy agents did, and how often (legacy-protocol.md §0.2).

The legacy agents published their failures (a model that did not load, a database they could not reach)
as ``"ERROR:" + JSON`` reports with a ``severity``. ``ErrorReports`` collects the hub's equivalents from
four places and hands them to a sender (``Neighbours.report_error``):

* ``on_event``: an ``EventPublisher`` observer. Domain code never sees the ErrorBus: it publishes a
  ``hub.error`` event ``{"error_type", "message", "severity", "agent"?, "details"?}`` (a failed model load,
  a failed evaluation), which subscribers of the events port see too.
* ``after_call``: a dispatcher hook for native and HTTP calls: ``internal`` (a handler exception) and
  ``unavailable`` (storage or model not ready) outcomes.
* ``on_legacy_failure``: a handler exception on a legacy port (the caller got BaseAgent's error reply).
* ``watch``: a periodic pass over the health checks the hub names (``watched_checks``); a check that fails
  is reported once as ``<check>_unavailable`` (ERROR), its recovery as ``<check>_reconnected`` (INFO),
  e.g. ``redis_unavailable`` / ``redis_reconnected`` around a Redis restart.

Every report is rate-limited per ``error_type``: at most ``per_type`` reports in ``window_s`` seconds; the
rest are counted and the next report that passes carries ``details.suppressed`` (how many were dropped), so
a flood of bad requests cannot flood the bus.
"""
from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from bus.log import get_logger
from bus.periodic import PeriodicTask
from bus.settings import setting

log = get_logger("bus.error_reports")



@dataclass(frozen=True)
class ErrorReportSettings:
    """Section ``neighbours.error_bus.reports``."""

    per_type: int = setting(5, minimum=1)                  # reports per error type per window
    window_s: float = setting(60.0, minimum=0.001)
    watch_interval_s: float = setting(5.0, minimum=0.01)   # how often the watched health checks run


Send = Callable[..., None]          # (error_type, message, severity, *, agent, details) -> None
Check = Callable[[], tuple[bool, Any]]
REPORTED_OUTCOMES = {"internal": "ERROR", "unavailable": "WARNING"}


class RateLimit:
    """At most ``per_type`` passes per key in any ``window_s``; counts what it refuses."""

    def __init__(self, per_type: int, window_s: float, clock: Callable[[], float] = time.monotonic):
        self.per_type = int(per_type)
        self.window_s = float(window_s)
        self.clock = clock
        self._sent: dict[str, list[float]] = {}
        self._suppressed: dict[str, int] = {}
        self._lock = threading.Lock()

    def admit(self, key: str) -> tuple[bool, int]:
        """``(passes, suppressed_before)``: the count of refused reports is returned (and reset) on a pass."""
        now = self.clock()
        with self._lock:
            recent = [t for t in self._sent.get(key, ()) if now - t < self.window_s]
            if len(recent) >= self.per_type:
                self._sent[key] = recent
                self._suppressed[key] = self._suppressed.get(key, 0) + 1
                return False, 0
            recent.append(now)
            self._sent[key] = recent
            return True, self._suppressed.pop(key, 0)


class ErrorReports:
    def __init__(self, send: Send, settings: ErrorReportSettings, hub_name: str,
                 watched_checks: Iterable[str] = (), clock: Callable[[], float] = time.monotonic):
        self.send = send
        self.settings = settings
        self.hub_name = hub_name
        self.watched_checks = tuple(watched_checks)     # the hub's storage checks (e.g. sql, redis)
        self.limit = RateLimit(settings.per_type, settings.window_s, clock)
        self.suppressed_total = 0
        self._check_state: dict[str, bool] = {}

    def report(self, error_type: str, message: str, severity: str = "ERROR", *, agent: str | None = None,
               details: dict[str, Any] | None = None) -> bool:
        """Send one report unless its type is over the rate limit; True when it was sent."""
        passes, suppressed = self.limit.admit(error_type)
        if not passes:
            self.suppressed_total += 1
            return False
        if suppressed:
            details = {**(details or {}), "suppressed": suppressed}
        try:
            self.send(error_type, message, severity, agent=agent or self.hub_name, details=details)
        except Exception as exc:        # the ErrorBus is optional: never break the caller
            log.error("error_report_failed", error_type=error_type, error=repr(exc))
            return False
        return True

    # -- sources --------------------------------------------------------------------------------------
    def on_event(self, topic: str, fields: dict[str, Any] | None) -> None:
        if topic != "hub.error" or not fields:
            return
        self.report(str(fields.get("error_type") or "error"), str(fields.get("message") or ""),
                    str(fields.get("severity") or "ERROR"), agent=fields.get("agent"),
                    details=fields.get("details"))

    def after_call(self, principal: Any, agent: str, action: str, outcome: str) -> None:
        severity = REPORTED_OUTCOMES.get(outcome)
        if severity is not None:
            self.report(outcome, f"{agent}.{action} failed ({outcome}); see the hub log", severity, agent=agent,
                        details={"action": action})

    def on_legacy_failure(self, agent: str, port: int, exc: BaseException) -> None:
        self.report("legacy_handler_exception", f"{agent} on legacy port {port}: {exc!r}"[:500], "ERROR",
                    agent=agent, details={"port": port})

    def check_once(self, checks: Mapping[str, Check]) -> None:
        """Report storage checks that changed state since the last pass (unknown before = healthy)."""
        for name in self.watched_checks:
            check = checks.get(name)
            if check is None:
                continue
            try:
                ok, detail = check()
            except Exception as exc:
                ok, detail = False, repr(exc)
            was_ok = self._check_state.get(name, True)
            self._check_state[name] = bool(ok)
            if was_ok and not ok:
                self.report(f"{name}_unavailable", f"{name} is not available", "ERROR",
                            details={"check": name, "detail": _short(detail)})
            elif ok and not was_ok:
                self.report(f"{name}_reconnected", f"{name} is available again", "INFO", details={"check": name})

    def watch(self, checks: Mapping[str, Check]) -> PeriodicTask:
        """A task (not started) running ``check_once`` every ``watch_interval_s``."""
        return PeriodicTask("error-reports-watch", self.settings.watch_interval_s,
                            lambda: self.check_once(checks))


def _short(detail: Any) -> Any:
    text = repr(detail)
    return detail if len(text) <= 500 else text[:500]
