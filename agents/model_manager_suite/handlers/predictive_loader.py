"""PredictiveLoader: legacy-protocol.md §3.3 (5617; health 5618 in code, 6617 in YAML).

Wire contract (legacy port): health requests (`ping`, `health`, `health_check`) answer the legacy health
reply; the legacy health port answers any message with it. Other actions arrive with the issue that builds
this agent and answer `Unknown action` until then.
"""
from __future__ import annotations

from bus.handler import Handler
from agents.model_manager_suite.services import ModelServices


class PredictiveLoader(Handler):
    name = "PredictiveLoader"
    legacy_ports = (5617,)
    legacy_health_ports = (5618, 6617)

    def __init__(self, services: ModelServices):
        self.services = services
