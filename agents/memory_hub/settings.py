"""MemoryHub's own settings: one typed, frozen section per component, each defined next to its code.

The sections common to both hubs (``hub``, ``storage``, ``auth``, ``neighbours``, ...) belong to the bus;
``hub.py`` reads the few values it needs from them and passes them explicitly.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from agents.memory_hub.auth import AuthAgentSettings
from agents.memory_hub.cache import CacheSettings
from agents.memory_hub.cleanup import UtilsSettings
from agents.memory_hub.context_monitor import ContextMonitorSettings
from agents.memory_hub.context_window import ContextWindowSettings
from agents.memory_hub.knowledge import KnowledgeSettings
from agents.memory_hub.kv import KeyValueSettings
from agents.memory_hub.lifecycle import LifecycleSettings
from agents.memory_hub.memories import MemorySettings
from agents.memory_hub.reasoning import ReasoningSettings
from agents.memory_hub.search.settings import SearchSettings
from agents.memory_hub.sessions import SessionSettings
from agents.memory_hub.stores.embedded_redis import EmbeddedRedisSettings
from agents.memory_hub.stores.redis_store import RedisSettings
from agents.memory_hub.trust import TrustSettings
from agents.sql_engine import SqlSettings


@dataclass(frozen=True)
class MemoryOrchestratorSettings(MemorySettings, LifecycleSettings):
    """The ``memory_orchestrator`` section: the memory store's limits and the lifecycle's knobs."""


@dataclass(frozen=True)
class MemoryHubSettings:
    # stores
    sql: SqlSettings = field(default_factory=SqlSettings)
    redis: RedisSettings = field(default_factory=RedisSettings)
    embedded_redis: EmbeddedRedisSettings = field(default_factory=EmbeddedRedisSettings)
    search: SearchSettings = field(default_factory=SearchSettings)
    # domain services and their handlers
    memory_orchestrator: MemoryOrchestratorSettings = field(default_factory=MemoryOrchestratorSettings)
    session_memory: SessionSettings = field(default_factory=SessionSettings)
    memory_client: KeyValueSettings = field(default_factory=KeyValueSettings)
    knowledge_base: KnowledgeSettings = field(default_factory=KnowledgeSettings)
    cache_manager: CacheSettings = field(default_factory=CacheSettings)
    context_manager: ContextWindowSettings = field(default_factory=ContextWindowSettings)
    context_monitor: ContextMonitorSettings = field(default_factory=ContextMonitorSettings)
    unified_memory_reasoning: ReasoningSettings = field(default_factory=ReasoningSettings)
    utils: UtilsSettings = field(default_factory=UtilsSettings)
    auth_agent: AuthAgentSettings = field(default_factory=AuthAgentSettings)
    trust: TrustSettings = field(default_factory=TrustSettings)
