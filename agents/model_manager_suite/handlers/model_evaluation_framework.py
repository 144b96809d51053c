"""ModelEvaluationFramework: legacy-protocol.md §3.4 (7220/7221).

Wire contract (legacy port): health requests (`ping`, `health`, `health_check`) answer the legacy health
reply; the legacy health port answers any message with it. Other actions arrive with the issue that builds
this agent and answer `Unknown action` until then.
"""
from __future__ import annotations

from bus.handler import Handler
from agents.model_manager_suite.services import ModelServices


class ModelEvaluationFramework(Handler):
    name = "ModelEvaluationFramework"
    legacy_ports = (7220,)
    legacy_health_ports = (7221,)

    def __init__(self, services: ModelServices):
        self.services = services
