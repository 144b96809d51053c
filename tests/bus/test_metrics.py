"""The hub's request metrics as Prometheus reads them: counted by the router without locks, exposed as the
usual counter and histogram series (cumulative buckets, count and sum, errors by code)."""
from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from bus.metrics import HubMetrics


def samples(metrics: HubMetrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(metrics.render().decode()):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def test_requests_latency_and_errors_are_exposed_as_prometheus_series():
    metrics = HubMetrics("test")
    stats = metrics.requests
    echo = stats.series("EchoAgent", "echo")
    for seconds in (0.0002, 0.0007, 0.003, 0.003, 45.0):
        stats.observe(echo, "ok", seconds)
    stats.observe(echo, "timeout", 61.0)
    stats.count("?", "?", "bad_request")
    got = samples(metrics)
    labels = (("action", "echo"), ("agent", "EchoAgent"))
    assert got[("hub_requests_total", labels + (("outcome", "ok"),))] == 5
    assert got[("hub_requests_total", labels + (("outcome", "timeout"),))] == 1
    assert got[("hub_requests_total", (("action", "?"), ("agent", "?"), ("outcome", "bad_request")))] == 1
    bucket = lambda le: got[("hub_request_seconds_bucket", labels + (("le", le),))]     # noqa: E731
    assert (bucket("0.0005"), bucket("0.001"), bucket("0.005"), bucket("30.0"), bucket("60.0"), bucket("+Inf")) \
        == (1, 2, 4, 4, 5, 6)
    assert got[("hub_request_seconds_count", labels)] == 6
    assert abs(got[("hub_request_seconds_sum", labels)] - 106.0069) < 1e-9
    assert got[("hub_errors_total", (("code", "timeout"),))] == 1
    assert got[("hub_errors_total", (("code", "bad_request"),))] == 1
    assert ("hub_errors_total", (("code", "ok"),)) not in got


def test_in_flight_and_queue_depth_are_read_when_scraped():
    metrics = HubMetrics("test")
    pending = [1, 2, 3]
    metrics.in_flight.set_function(lambda: len(pending))
    assert samples(metrics)[("hub_in_flight_requests", ())] == 3
    pending.clear()
    assert samples(metrics)[("hub_in_flight_requests", ())] == 0
