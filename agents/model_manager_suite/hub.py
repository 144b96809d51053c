"""ModelManagerSuite composition: settings defaults, services, and the explicit list of its 4 handlers."""
from __future__ import annotations

from bus.config import merge_defaults
from bus.daemon import Assembly, HubSpec, Runtime, transitional_settings_class
from bus.idempotency import open_idempotency
from agents.model_manager_suite.sql_models import IDEMPOTENCY
from agents.model_manager_suite import defaults as model_defaults
from agents.model_manager_suite.metrics import ModelCollector
from agents.model_manager_suite import model_facts
from agents.model_manager_suite.services import ModelServices, open_services
from agents.model_manager_suite.handlers.gguf_model_manager import GGUFModelManager
from agents.model_manager_suite.handlers.model_manager_agent import ModelManagerAgent
from agents.model_manager_suite.handlers.predictive_loader import PredictiveLoader
from agents.model_manager_suite.handlers.model_evaluation_framework import ModelEvaluationFramework

VERSION = "0.1.0"

HANDLER_CLASSES = (GGUFModelManager, ModelManagerAgent, PredictiveLoader, ModelEvaluationFramework)

DEFAULTS: dict = merge_defaults(model_defaults.DEFAULTS, model_facts.DEFAULTS,
                                *(cls.DEFAULTS for cls in HANDLER_CLASSES))
ENV_MAP: dict[str, tuple[str, ...]] = {"MODELS_DIR": ("models", "dirs"), "MEMORY_HUB_TOKEN": ("model_facts", "token")}


def build(runtime: Runtime) -> Assembly:
    services = open_services(runtime.raw_settings, runtime.data_dir, runtime.events, runtime.tokens,
                             runtime.metrics.registry)
    try:
        handlers = [cls(services) for cls in HANDLER_CLASSES]
        services.core.start()
        runtime.metrics.registry.register(ModelCollector(services.loader))
        idempotency = open_idempotency(services.store.engine, IDEMPOTENCY.name, runtime.settings.hub)
        facts = model_facts.start_model_facts(runtime.raw_settings, services.store.engine, services.registry,
                                              runtime.events, model_facts.memory_hub_token_minter(runtime.tokens))
    except Exception:
        services.close()
        raise
    checks, close = _core_checks(services), [services.close]
    if facts is not None:
        checks["model_facts"] = facts.health
        close.append(facts.stop)       # closes run in reverse: the sender stops before the database
    return Assembly(handlers=handlers, checks=checks, critical={"model_database"}, close=close,
                    idempotency=idempotency)


SPEC = HubSpec(
    name="model_manager_suite", title="ModelManagerSuite", version=VERSION,
    ports={"native_port": 7011, "http_port": 7111, "events_port": 7311},
    settings_class=transitional_settings_class("ModelManagerSuiteSettings", DEFAULTS), env_map=ENV_MAP,
    build=build,
    event_content_fields=("text", "content", "metadata", "value", "query", "summary", "context", "topic",
                          "previous_topic"),
    watched_checks=("model_database",),
    agent_capabilities={name: "model_inference" for name in ("GGUFModelManager", "ModelManagerAgent",
                                                             "PredictiveLoader", "ModelEvaluationFramework")},
)


def _core_checks(services: ModelServices) -> dict:
    names = ("model_database", "model_registry", "model_device", "gpu_offload")
    return {name: (lambda name=name: services.core.health_checks()[name]) for name in names}
