"""UnifiedMemoryReasoningAgent: legacy-protocol.md §2.1 (7105; health 7106 in code, 8105 in YAML).

Wire contract (legacy port): health requests (`ping`, `health`, `health_check`) answer the legacy health
reply; the legacy health port answers any message with it. Other actions arrive with the issue that builds
this agent and answer `Unknown action` until then.
"""
from __future__ import annotations

from bus.handler import Handler
from agents.memory_hub.services import MemoryServices


class UnifiedMemoryReasoningAgent(Handler):
    name = "UnifiedMemoryReasoningAgent"
    legacy_ports = (7105,)
    legacy_health_ports = (7106, 8105)

    def __init__(self, services: MemoryServices):
        self.services = services
