"""CacheManager: legacy-protocol.md §2.4 (7102/8102).

Wire contract (legacy port): health requests (`ping`, `health`, `health_check`) answer the legacy health
reply; the legacy health port answers any message with it. Other actions arrive with the issue that builds
this agent and answer `Unknown action` until then.
"""
from __future__ import annotations

from bus.handler import Handler
from agents.memory_hub.services import MemoryServices


class CacheManager(Handler):
    name = "CacheManager"
    legacy_ports = (7102,)
    legacy_health_ports = (8102,)

    def __init__(self, services: MemoryServices):
        self.services = services
