"""ExperienceTracker: legacy-protocol.md §2.3 (7112; health 8112 from YAML; the code's 7113 is ResourceManager's).

Wire contract (legacy port): health requests (`ping`, `health`, `health_check`) answer the legacy health
reply; the legacy health port answers any message with it. Other actions arrive with the issue that builds
this agent and answer `Unknown action` until then.
"""
from __future__ import annotations

from bus.handler import Handler
from agents.memory_hub.services import MemoryServices


class ExperienceTracker(Handler):
    name = "ExperienceTracker"
    legacy_ports = (7112,)
    legacy_health_ports = (8112,)

    def __init__(self, services: MemoryServices):
        self.services = services
