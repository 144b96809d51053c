"""ContextManager: legacy-protocol.md §2.2 (7111; health 8111 from YAML; the code's 7112 clashes with ExperienceTracker).

Wire contract (legacy port): health requests (`ping`, `health`, `health_check`) answer the legacy health
reply; the legacy health port answers any message with it. Other actions arrive with the issue that builds
this agent and answer `Unknown action` until then.
"""
from __future__ import annotations

from bus.handler import Handler
from agents.memory_hub.services import MemoryServices


class ContextManager(Handler):
    name = "ContextManager"
    legacy_ports = (7111,)
    legacy_health_ports = (8111,)

    def __init__(self, services: MemoryServices):
        self.services = services
