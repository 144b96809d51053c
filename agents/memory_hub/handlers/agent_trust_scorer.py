"""AgentTrustScorer: legacy-protocol.md §2.8 (YAML 7122/8122 and code default 5626/5627: both bound).

Wire contract (legacy port): health requests (`ping`, `health`, `health_check`) answer the legacy health
reply; the legacy health port answers any message with it. Other actions arrive with the issue that builds
this agent and answer `Unknown action` until then.
"""
from __future__ import annotations

from bus.handler import Handler
from agents.memory_hub.services import MemoryServices


class AgentTrustScorer(Handler):
    name = "AgentTrustScorer"
    legacy_ports = (7122, 5626)
    legacy_health_ports = (8122, 5627)

    def __init__(self, services: MemoryServices):
        self.services = services
