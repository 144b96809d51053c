"""Prometheus metrics of one hub, on a registry of its own (served on GET /metrics)."""
from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


class HubMetrics:
    def __init__(self, hub: str):
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("hub_requests_total", "Requests by agent, action and outcome",
                                ["agent", "action", "outcome"], registry=r)
        self.latency = Histogram("hub_request_seconds", "Request latency by agent and action",
                                 ["agent", "action"], buckets=LATENCY_BUCKETS, registry=r)
        self.in_flight = Gauge("hub_in_flight_requests", "Requests accepted and not yet answered", registry=r)
        self.queue_depth = Gauge("hub_queue_depth", "Requests waiting for a worker", registry=r)
        self.errors = Counter("hub_errors_total", "Error replies by code", ["code"], registry=r)
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
