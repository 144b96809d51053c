"""GGUFModelManager: legacy-protocol.md §3.1 (5575; health 5576 in code, 6575 in YAML).

Wire contract (legacy port): health requests (`ping`, `health`, `health_check`) answer the legacy health
reply; the legacy health port answers any message with it. Other actions arrive with the issue that builds
this agent and answer `Unknown action` until then.
"""
from __future__ import annotations

from bus.handler import Handler
from agents.model_manager_suite.services import ModelServices


class GGUFModelManager(Handler):
    name = "GGUFModelManager"
    legacy_ports = (5575,)
    legacy_health_ports = (5576, 6575)

    def __init__(self, services: ModelServices):
        self.services = services
