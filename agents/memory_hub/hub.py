"""MemoryHub composition: settings defaults, services, and the explicit list of its 12 handlers."""
from __future__ import annotations

from bus.config import merge_defaults
from bus.daemon import Assembly, HubSpec, Runtime, transitional_settings_class
from bus.idempotency import open_idempotency
from agents.memory_hub.stores.sql_models import IDEMPOTENCY
from agents.memory_hub.services import open_services
from agents.memory_hub.search import settings as search_settings
from agents.memory_hub.stores import factory
from agents.memory_hub.trust import make_call_feeder, make_trust_policy
from agents.memory_hub.handlers.memory_client import MemoryClient
from agents.memory_hub.handlers.session_memory_agent import SessionMemoryAgent
from agents.memory_hub.handlers.knowledge_base import KnowledgeBase
from agents.memory_hub.handlers.memory_orchestrator_service import MemoryOrchestratorService
from agents.memory_hub.handlers.unified_memory_reasoning_agent import UnifiedMemoryReasoningAgent
from agents.memory_hub.handlers.context_manager import ContextManager
from agents.memory_hub.handlers.experience_tracker import ExperienceTracker
from agents.memory_hub.handlers.cache_manager import CacheManager
from agents.memory_hub.handlers.proactive_context_monitor import ProactiveContextMonitor
from agents.memory_hub.handlers.unified_utils_agent import UnifiedUtilsAgent
from agents.memory_hub.handlers.authentication_agent import AuthenticationAgent, make_revocation_check
from agents.memory_hub.handlers.agent_trust_scorer import AgentTrustScorer

VERSION = "0.1.0"

HANDLER_CLASSES = (
    MemoryOrchestratorService, MemoryClient, SessionMemoryAgent, KnowledgeBase, CacheManager,
    ContextManager, ExperienceTracker, UnifiedMemoryReasoningAgent, ProactiveContextMonitor,
    UnifiedUtilsAgent, AuthenticationAgent, AgentTrustScorer,
)

DEFAULTS: dict = merge_defaults(factory.DEFAULTS, search_settings.DEFAULTS,
                                *(cls.DEFAULTS for cls in HANDLER_CLASSES))
ENV_MAP: dict[str, tuple[str, ...]] = {}


def build(runtime: Runtime) -> Assembly:
    services = open_services(runtime.raw_settings, runtime.data_dir, runtime.events, runtime.tokens,
                             runtime.metrics.registry)
    try:
        handlers = [cls(services) for cls in HANDLER_CLASSES]
        idempotency = open_idempotency(services.sql.engine, IDEMPOTENCY.name, runtime.settings.hub)
    except Exception:
        services.close()
        raise
    monitor = next(h for h in handlers if isinstance(h, ProactiveContextMonitor))
    runtime.events.observers.append(monitor.observe)
    runtime.tokens.is_revoked = make_revocation_check(services)
    checks = {"sql": services.sql.health, "redis": services.redis.health}
    startup = []
    if services.search is not None:
        checks["search"] = services.search.health
        startup.append(services.search.wait_ready)      # sd_notify READY=1 once search answers
    auth_agent = next(h for h in handlers if isinstance(h, AuthenticationAgent))
    return Assembly(handlers=handlers, checks=checks, critical={"sql"}, policies=[make_trust_policy(services)],
                    after_call=[make_call_feeder(services)], close=[services.close], idempotency=idempotency,
                    revoke=auth_agent.revoke, startup=startup)


SPEC = HubSpec(
    name="memory_hub", title="MemoryHub", version=VERSION,
    ports={"native_port": 7010, "http_port": 7110, "events_port": 7310},
    settings_class=transitional_settings_class("MemoryHubSettings", DEFAULTS), env_map=ENV_MAP, build=build,
    event_content_fields=("text", "content", "metadata", "value", "query", "summary", "context", "topic",
                          "previous_topic"),
    watched_checks=("sql", "redis"),
    agent_capabilities={name: "memory_management" for name in ("MemoryOrchestratorService", "MemoryClient",
                                                               "SessionMemoryAgent", "UnifiedMemoryReasoningAgent")},
)
