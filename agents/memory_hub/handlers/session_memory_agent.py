"""SessionMemoryAgent: legacy-protocol.md §1.2 (5574; health 6583 in code, 6574 in YAML: both bound).

Wire contract (legacy port): health requests (`ping`, `health`, `health_check`) answer the legacy health
reply; the legacy health port answers any message with it. Other actions arrive with the issue that builds
this agent and answer `Unknown action` until then.
"""
from __future__ import annotations

from bus.handler import Handler
from agents.memory_hub.services import MemoryServices


class SessionMemoryAgent(Handler):
    name = "SessionMemoryAgent"
    legacy_ports = (5574,)
    legacy_health_ports = (6583, 6574)

    def __init__(self, services: MemoryServices):
        self.services = services
