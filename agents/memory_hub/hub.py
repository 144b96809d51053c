"""MemoryHub composition: everything is built once, here, in order, and handed down in constructors.

    stores (SQL, Redis, search)  ->  domain services (memories, sessions, revocations, trust)
    ->  the 12 handlers (each given its typed section and the domain objects it uses)  ->  the Assembly

Settings: ``MemoryHubSettings`` (settings.py) holds MemoryHub's own sections; the few common values it needs
(``hub.default_deadline_ms``, ``storage.*``, ``auth.leeway_s``, ``neighbours.error_bus``) are read here only.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from collections.abc import Callable

from agents.memory_hub.auth import RevocationList
from agents.memory_hub.handlers.agent_trust_scorer import AgentTrustScorer
from agents.memory_hub.handlers.authentication_agent import AuthenticationAgent
from agents.memory_hub.handlers.cache_manager import CacheManager
from agents.memory_hub.handlers.context_manager import ContextManager
from agents.memory_hub.handlers.experience_tracker import ExperienceTracker
from agents.memory_hub.handlers.knowledge_base import KnowledgeBase
from agents.memory_hub.handlers.memory_client import MemoryClient
from agents.memory_hub.handlers.memory_orchestrator_service import MemoryOrchestratorService
from agents.memory_hub.handlers.proactive_context_monitor import ProactiveContextMonitor
from agents.memory_hub.handlers.session_memory_agent import SessionMemoryAgent
from agents.memory_hub.handlers.unified_memory_reasoning_agent import UnifiedMemoryReasoningAgent
from agents.memory_hub.handlers.unified_utils_agent import UnifiedUtilsAgent
from agents.memory_hub.knowledge import Knowledge
from agents.memory_hub.memories import Memories
from agents.memory_hub.search.settings import SearchSettings
from agents.memory_hub.sessions import Sessions
from agents.memory_hub.settings import MemoryHubSettings
from agents.memory_hub.stores.factory import open_stores
from agents.memory_hub.stores.sql_models import IDEMPOTENCY
from agents.memory_hub.trust import CallFeeder, TrustPolicy, TrustStore
from bus.daemon import Assembly, HubSpec, Runtime
from bus.events import EventPublisher, NullPublisher
from bus.handler import Handler
from bus.idempotency import open_idempotency
from bus.log import get_logger
from bus.tokens import TokenService

log = get_logger("memory_hub.hub")

VERSION = "0.1.0"

HANDLER_CLASSES = (
    MemoryOrchestratorService, MemoryClient, SessionMemoryAgent, KnowledgeBase, CacheManager,
    ContextManager, ExperienceTracker, UnifiedMemoryReasoningAgent, ProactiveContextMonitor,
    UnifiedUtilsAgent, AuthenticationAgent, AgentTrustScorer,
)
ENV_MAP: dict[str, tuple[str, ...]] = {}
H = TypeVar("H", bound=Handler)


@dataclass
class MemoryHubParts:
    """What ``compose`` built: the handlers (in ``HANDLER_CLASSES`` order), the domain services the hub itself
    wires (revocation check, trust policy and feeder), and ``close`` for what they started."""

    handlers: list[Handler]
    memories: Memories
    sessions: Sessions
    revocations: RevocationList
    trust_policy: TrustPolicy
    call_feeder: CallFeeder
    closers: list[Callable[[], None]] = field(default_factory=list)

    def handler(self, cls: type[H]) -> H:
        return next(h for h in self.handlers if isinstance(h, cls))

    def close(self) -> None:
        close_all(self.closers)


def close_all(closers: list[Callable[[], None]]) -> None:
    """Run ``closers`` newest first, each despite the failures of the others; empties the list."""
    for close in reversed(closers):
        try:
            close()
        except Exception as exc:
            log.error("close_failed", error=repr(exc))
    closers.clear()


def compose(settings: MemoryHubSettings, *, sql: Any, redis: Any, events: EventPublisher | NullPublisher,
            data_dir: Path, search: Any = None, tokens: TokenService | None = None, revocation_leeway_s: float = 5.0,
            error_reporting: bool = False) -> MemoryHubParts:
    """The domain services, then the 12 handlers, on stores opened by the caller (``build`` or a test)."""
    memories = Memories(sql, redis, search, events, settings.memory_orchestrator)
    sessions = Sessions(memories, redis, events, settings.session_memory)
    revocations = RevocationList(redis, settings.auth_agent, leeway_s=revocation_leeway_s, sql=sql,
                                 publish=events.publish)
    trust_store = TrustStore(sql) if sql is not None else None
    trust_policy = TrustPolicy(trust_store, settings.trust)
    call_feeder = CallFeeder(trust_store, settings.trust, on_scored=trust_policy.invalidate)
    parts = MemoryHubParts([], memories, sessions, revocations, trust_policy, call_feeder,
                           closers=[revocations.close, trust_policy.stop, call_feeder.stop])
    if tokens is not None:
        tokens.is_revoked = revocations.is_revoked
    try:
        parts.handlers = [
            MemoryOrchestratorService(settings.memory_orchestrator, memories, sessions, events, redis),
            MemoryClient(settings.memory_client, memories, sessions, sql, redis),
            SessionMemoryAgent(sessions),
            KnowledgeBase(Knowledge(memories, redis, settings.knowledge_base)),
            CacheManager(settings.cache_manager, redis, error_reporting=error_reporting),
            ContextManager(settings.context_manager, events, sql, redis),
            ExperienceTracker(sql),
            UnifiedMemoryReasoningAgent(settings.unified_memory_reasoning, sql, search),
            ProactiveContextMonitor(settings.context_monitor, events, sql, redis, search),
            UnifiedUtilsAgent(settings.utils, data_dir),
            AuthenticationAgent(settings.auth_agent, revocations, sql, tokens),
            AgentTrustScorer(settings.trust, trust_store, trust_policy, call_feeder),
        ]
    except BaseException:
        parts.close()
        raise
    return parts


def open_search(section: SearchSettings, sql: Any, data_dir: Path,
                default_wait_s: float) -> tuple[Any, list[Callable[[], None]]]:
    """The search engine (None when disabled) and its closers: on PostgreSQL with its change feed, so replicas
    sharing the database see each other's memories."""
    if not section.enabled:
        log.info("search_disabled", message="semantic search falls back to text search")
        return None, []
    from agents.memory_hub.search.engine import SearchEngine

    engine = SearchEngine(sql, settings=section, data_dir=data_dir, default_wait_s=default_wait_s)
    closers: list[Callable[[], None]] = [engine.close]
    if sql.leadership.postgres:                 # replicas may share the database: follow their writes
        from agents.memory_hub.search.change_feed import ChangeFeed
        feed = ChangeFeed(engine, sql.url, sql.replica)
        feed.start()                            # listens before the index loads, so no write falls between
        closers.append(feed.stop)
    engine.start_background()   # the model loads on a thread; rows written meanwhile are embedded before ready
    return engine, closers


def build(runtime: Runtime) -> Assembly:
    settings: MemoryHubSettings = runtime.hub_settings
    storage, hub = runtime.settings.storage, runtime.settings.hub
    stores = open_stores(runtime.data_dir, database_url=storage.database_url, redis_url=storage.redis_url,
                         sql=settings.sql, redis=settings.redis, embedded_redis=settings.embedded_redis)
    closers: list[Callable[[], None]] = [stores.close]

    def close() -> None:
        close_all(closers)

    try:
        from agents.memory_hub.search.engine import READY_MARGIN_S
        # a call without its own deadline waits for the model as long as the hub's default deadline allows
        default_wait_s = max(0.0, hub.default_deadline_ms / 1000 - READY_MARGIN_S)
        search, search_closers = open_search(settings.search, stores.sql, runtime.data_dir, default_wait_s)
        closers.extend(search_closers)
        parts = compose(settings, sql=stores.sql, redis=stores.redis, events=runtime.events,
                        data_dir=runtime.data_dir, search=search, tokens=runtime.tokens,
                        revocation_leeway_s=runtime.settings.auth.leeway_s,
                        error_reporting=runtime.settings.neighbours.error_bus.enabled)
        closers.append(parts.close)
        idempotency = open_idempotency(stores.sql.engine, IDEMPOTENCY.name, hub)
    except BaseException:
        close()
        raise
    runtime.events.observers.append(parts.handler(ProactiveContextMonitor).observe)
    checks = {"sql": stores.sql.health, "redis": stores.redis.health}
    startup = []
    if search is not None:
        checks["search"] = search.health
        startup.append(search.wait_ready)      # sd_notify READY=1 once search answers
    return Assembly(handlers=parts.handlers, checks=checks, critical={"sql"}, policies=[parts.trust_policy],
                    after_call=[parts.call_feeder], close=[close], idempotency=idempotency,
                    revoke=parts.handler(AuthenticationAgent).revoke, startup=startup)


SPEC = HubSpec(
    name="memory_hub", title="MemoryHub", version=VERSION,
    ports={"native_port": 7010, "http_port": 7110, "events_port": 7310},
    settings_class=MemoryHubSettings, env_map=ENV_MAP, build=build,
    event_content_fields=("text", "content", "metadata", "value", "query", "summary", "context", "topic",
                          "previous_topic"),
    watched_checks=("sql", "redis"),
    agent_capabilities={name: "memory_management" for name in ("MemoryOrchestratorService", "MemoryClient",
                                                               "SessionMemoryAgent", "UnifiedMemoryReasoningAgent")},
)
