"""ModelManagerAgent: legacy-protocol.md §3.2 (5570; health 5571 in code, 6570 in YAML).

Wire contract (legacy port): health requests (`ping`, `health`, `health_check`) answer the legacy health
reply; the legacy health port answers any message with it. Other actions arrive with the issue that builds
this agent and answer `Unknown action` until then.
"""
from __future__ import annotations

from bus.handler import Handler
from agents.model_manager_suite.services import ModelServices


class ModelManagerAgent(Handler):
    name = "ModelManagerAgent"
    legacy_ports = (5570,)
    legacy_health_ports = (5571, 6570)

    def __init__(self, services: ModelServices):
        self.services = services
