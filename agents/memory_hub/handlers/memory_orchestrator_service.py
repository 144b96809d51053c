"""MemoryOrchestratorService: legacy-protocol.md §1.4 (7140; health 7141 in code, 8140 in YAML: both bound).

Wire contract (legacy port): health requests (`ping`, `health`, `health_check`) answer the legacy health
reply; the legacy health port answers any message with it. Other actions arrive with the issue that builds
this agent and answer `Unknown action` until then.
"""
from __future__ import annotations

from bus.handler import Handler
from agents.memory_hub.services import MemoryServices


class MemoryOrchestratorService(Handler):
    name = "MemoryOrchestratorService"
    legacy_ports = (7140,)
    legacy_health_ports = (7141, 8140)

    def __init__(self, services: MemoryServices):
        self.services = services
