"""KnowledgeBase: legacy-protocol.md §1.3 (5715/6715).

Wire contract (legacy port): health requests (`ping`, `health`, `health_check`) answer the legacy health
reply; the legacy health port answers any message with it. Other actions arrive with the issue that builds
this agent and answer `Unknown action` until then.
"""
from __future__ import annotations

from bus.handler import Handler
from agents.memory_hub.services import MemoryServices


class KnowledgeBase(Handler):
    name = "KnowledgeBase"
    legacy_ports = (5715,)
    legacy_health_ports = (6715,)

    def __init__(self, services: MemoryServices):
        self.services = services
