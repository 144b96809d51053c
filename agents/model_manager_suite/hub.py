"""ModelManagerSuite composition: typed settings, then every part built once, in order, then the Assembly.

Order: the model layer (store, GPU monitor, budget, registry, loader, inference engine: ``open_model_core``),
the preloader (it keeps the usage log, so it exists before anything that records usage), the ModelAPI
shared by both model handlers, the evaluation jobs, the four handlers, then the model facts outbox sender.
Each part gets what it needs in its constructor; nothing is looked up later.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any
from collections.abc import Callable

from bus.daemon import Assembly, HubSpec, Runtime
from bus.handler import Handler
from bus.idempotency import open_idempotency
from agents.model_manager_suite.core import ModelCore, open_model_core
from agents.model_manager_suite.evaluation_jobs import EvalJobs
from agents.model_manager_suite.inference_api import ModelAPI
from agents.model_manager_suite.metrics import ModelCollector
from agents.model_manager_suite.model_facts import memory_hub_token_minter, start_model_facts
from agents.model_manager_suite.preloader import Preloader
from agents.model_manager_suite.settings import ModelManagerSuiteSettings
from agents.model_manager_suite.sql_models import IDEMPOTENCY
from agents.model_manager_suite.handlers.gguf_model_manager import GGUFModelManager
from agents.model_manager_suite.handlers.model_manager_agent import ModelManagerAgent
from agents.model_manager_suite.handlers.predictive_loader import PredictiveLoader
from agents.model_manager_suite.handlers.model_evaluation_framework import ModelEvaluationFramework

VERSION = "0.1.0"

HANDLER_CLASSES = (GGUFModelManager, ModelManagerAgent, PredictiveLoader, ModelEvaluationFramework)
ENV_MAP: dict[str, tuple[str, ...]] = {"MODELS_DIR": ("models", "dirs"), "MEMORY_HUB_TOKEN": ("model_facts", "token")}
CORE_CHECKS = ("model_database", "model_registry", "model_device", "gpu_offload")


@dataclass
class ModelManagerSuite:
    """The composed parts of the hub (what ``build`` hands to the bus; tests use the same composition)."""
    core: ModelCore
    preloader: Preloader
    api: ModelAPI
    jobs: EvalJobs
    gguf_model_manager: GGUFModelManager
    model_manager_agent: ModelManagerAgent
    predictive_loader: PredictiveLoader
    model_evaluation_framework: ModelEvaluationFramework

    @property
    def handlers(self) -> list[Handler]:
        return [self.gguf_model_manager, self.model_manager_agent, self.predictive_loader,
                self.model_evaluation_framework]


def compose(settings: ModelManagerSuiteSettings, core: ModelCore, events: Any,
            metrics_registry: Any = None) -> ModelManagerSuite:
    """Everything above the model layer, in order; ``events`` has ``publish(topic, fields)``."""
    preloader = Preloader(settings.predictive_loader, core.store.engine, core.loader, events, metrics_registry)
    api = ModelAPI(core.registry, core.loader, core.store, core.engine, settings.models,
                   record_usage=preloader.record_usage)
    jobs = EvalJobs(core.store.engine, core.loader, events, settings.model_evaluation)
    return ModelManagerSuite(
        core=core, preloader=preloader, api=api, jobs=jobs,
        gguf_model_manager=GGUFModelManager(api, settings.gguf_model_manager),
        model_manager_agent=ModelManagerAgent(api, settings.model_manager_agent),
        predictive_loader=PredictiveLoader(preloader),
        model_evaluation_framework=ModelEvaluationFramework(jobs))


def build(runtime: Runtime) -> Assembly:
    settings: ModelManagerSuiteSettings = runtime.hub_settings
    database_url: str | None = runtime.settings.storage.database_url
    core = open_model_core(settings.models, database_url, Path(runtime.data_dir), runtime.events, sql=settings.sql)
    try:
        suite = compose(settings, core, runtime.events, runtime.metrics.registry)
        core.start()
        runtime.metrics.registry.register(ModelCollector(core.loader))
        idempotency = open_idempotency(core.store.engine, IDEMPOTENCY.name, runtime.settings.hub)
        facts = start_model_facts(settings.model_facts, core.store.engine, core.registry, runtime.events,
                                  memory_hub_token_minter(runtime.tokens))
    except Exception:
        core.stop()
        raise
    checks: dict[str, Callable[[], tuple[bool, Any]]] = {name: _core_check(core, name) for name in CORE_CHECKS}
    close: list[Callable[[], None]] = [core.stop]
    if facts is not None:
        checks["model_facts"] = facts.health
        close.append(facts.stop)       # closes run in reverse: the sender stops before the database
    return Assembly(handlers=suite.handlers, checks=checks, critical={"model_database"}, close=close,
                    idempotency=idempotency)


def _core_check(core: ModelCore, name: str) -> Callable[[], tuple[bool, Any]]:
    return lambda: core.health_checks()[name]


SPEC = HubSpec(
    name="model_manager_suite", title="ModelManagerSuite", version=VERSION,
    ports={"native_port": 7011, "http_port": 7111, "events_port": 7311},
    settings_class=ModelManagerSuiteSettings, env_map=ENV_MAP,
    build=build,
    event_content_fields=("text", "content", "metadata", "value", "query", "summary", "context", "topic",
                          "previous_topic"),
    watched_checks=("model_database",),
    agent_capabilities={name: "model_inference" for name in ("GGUFModelManager", "ModelManagerAgent",
                                                             "PredictiveLoader", "ModelEvaluationFramework")},
)
