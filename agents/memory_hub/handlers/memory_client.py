"""MemoryClient: legacy-protocol.md §1.1 (MainPC MemoryClient, YAML 5713/6713).

Wire contract (legacy port): health requests (`ping`, `health`, `health_check`) answer the legacy health
reply; the legacy health port answers any message with it. Other actions arrive with the issue that builds
this agent and answer `Unknown action` until then.
"""
from __future__ import annotations

from bus.handler import Handler
from agents.memory_hub.services import MemoryServices


class MemoryClient(Handler):
    name = "MemoryClient"
    legacy_ports = (5713,)
    legacy_health_ports = (6713,)

    def __init__(self, services: MemoryServices):
        self.services = services
