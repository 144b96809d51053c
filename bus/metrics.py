"""Prometheus metrics of one hub, on a registry of its own (served on GET /metrics)."""
from __future__ import annotations

import bisect
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.metrics_core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
_BUCKET_LABELS = (*map(floatToGoString, LATENCY_BUCKETS), "+Inf")       # as prometheus_client's Histogram


class ActionSeries:
    """The counts of one (agent, action): replies by outcome, and the latency histogram."""

    __slots__ = ("buckets", "outcomes", "seconds")

    def __init__(self) -> None:
        self.outcomes: dict[str, int] = {}
        self.buckets = [0] * (len(LATENCY_BUCKETS) + 1)     # per bucket (not cumulative); the last is +Inf
        self.seconds = 0.0


class RequestStats(Collector):
    """``hub_requests_total``, ``hub_request_seconds`` and ``hub_errors_total``: counted by the router thread
    alone, without a lock, and read when Prometheus scrapes. (prometheus_client's Counter and Histogram take
    a lock on every update: 2.5 us a request, measured, on the thread every request passes through.)"""

    def __init__(self) -> None:
        self._series: dict[tuple[str, str], ActionSeries] = {}
        self._errors: dict[str, int] = {}

    def series(self, agent: str, action: str) -> ActionSeries:
        """The series of (agent, action); the router keeps it to count each request without a lookup."""
        found = self._series.get((agent, action))
        if found is None:
            found = self._series[(agent, action)] = ActionSeries()
        return found

    def observe(self, series: ActionSeries, outcome: str, seconds: float) -> None:
        series.outcomes[outcome] = series.outcomes.get(outcome, 0) + 1
        series.buckets[bisect.bisect_left(LATENCY_BUCKETS, seconds)] += 1
        series.seconds += seconds
        if outcome != "ok":
            self.count_error(outcome)

    def count(self, agent: str, action: str, outcome: str) -> None:
        """A reply that has no latency worth recording (a request refused before it was resolved)."""
        outcomes = self.series(agent, action).outcomes
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
        self.count_error(outcome)

    def count_error(self, code: str) -> None:
        self._errors[code] = self._errors.get(code, 0) + 1

    def collect(self) -> Iterator[Metric]:
        # Another thread scrapes while the router counts: copies (each taken in one step under the GIL)
        # give counts that may trail by a request, never a torn or decreasing series.
        series = list(self._series.items())
        requests = CounterMetricFamily("hub_requests", "Requests by agent, action and outcome",
                                       labels=["agent", "action", "outcome"])
        latency = HistogramMetricFamily("hub_request_seconds", "Request latency by agent and action",
                                        labels=["agent", "action"])
        for (agent, action), one in series:
            for outcome, total in list(one.outcomes.items()):
                requests.add_metric([agent, action, outcome], total)
            counts, seconds = list(one.buckets), one.seconds
            if not sum(counts):
                continue
            cumulative, running = [], 0
            for bound, count in zip(_BUCKET_LABELS, counts):
                running += count
                cumulative.append((bound, running))
            latency.add_metric([agent, action], cumulative, seconds)
        errors = CounterMetricFamily("hub_errors", "Error replies by code", labels=["code"])
        for code, total in list(self._errors.items()):
            errors.add_metric([code], total)
        yield requests
        yield latency
        yield errors


class HubMetrics:
    def __init__(self, hub: str):
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = RequestStats()
        r.register(self.requests)
        # read when scraped (``set_function``): the server hands over its counts once it runs
        self.in_flight = Gauge("hub_in_flight_requests", "Requests accepted and not yet answered", registry=r)
        self.queue_depth = Gauge("hub_queue_depth", "Requests waiting for a worker", registry=r)
        self.legacy = Counter("hub_legacy_requests_total", "Requests on legacy ports", ["agent", "port", "kind"],
                              registry=r)
        # legacy actions by the adapter's outcome; unknown actions share one action label (bus.legacy.UNKNOWN_NAME)
        self.legacy_actions = Counter("hub_legacy_actions_total", "Legacy requests by agent, action and outcome",
                                      ["agent", "action", "outcome"], registry=r)
        self.refused_peers = Counter("hub_refused_peers_total", "Connections refused by the legacy allow-list",
                                     ["address"], registry=r)
        self.late_replies = Counter("hub_late_results_total", "Results that arrived after their deadline reply",
                                    registry=r)
        self.events = Counter("hub_events_published_total", "Events published by topic", ["topic"], registry=r)
        self.health = Gauge("hub_health_check_ok", "1 when a health check passes", ["check"], registry=r)
        self.info = Gauge("hub_info", "Hub identity", ["hub", "version"], registry=r)
        self.hub = hub

    def count_legacy_action(self, agent: str, action: str, outcome: str) -> None:
        """A ``bus.legacy.LegacyAdapter`` observer."""
        self.legacy_actions.labels(agent, action, outcome).inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)
