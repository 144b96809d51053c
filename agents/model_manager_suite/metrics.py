"""Prometheus gauges of the model suite, read from the loader at scrape time (no bookkeeping to drift).

``mms_model_loaded{model_id,device}`` (1 per loaded model), ``mms_memory_budget_bytes{device}``,
``mms_memory_used_bytes{device}`` (reserved by this process), ``mms_memory_other_processes_bytes{device}``.
"""
from __future__ import annotations

from typing import Any
from collections.abc import Iterator

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

MB = 1024 * 1024


class ModelCollector(Collector):
    def __init__(self, loader: Any):
        self.loader = loader

    def collect(self) -> Iterator[GaugeMetricFamily]:
        loaded = GaugeMetricFamily("mms_model_loaded", "1 while a model is loaded", labels=["model_id", "device"])
        budget = GaugeMetricFamily("mms_memory_budget_bytes", "Memory budget per device", labels=["device"])
        used = GaugeMetricFamily("mms_memory_used_bytes", "Memory reserved by loaded models", labels=["device"])
        others = GaugeMetricFamily("mms_memory_other_processes_bytes", "Memory reserved by other processes",
                                   labels=["device"])
        status = self.loader.status()
        for entry in status["loaded"]:
            loaded.add_metric([entry["model_id"], entry["device"]], 1)
        for device, info in status["devices"].items():
            budget.add_metric([device], info["capacity_mb"] * MB)
            used.add_metric([device], info["reserved_mb"] * MB)
            others.add_metric([device], info["other_processes_mb"] * MB)
        yield from (loaded, budget, used, others)
