"""ModelManagerSuite composition: settings defaults, services, and the explicit list of its 4 handlers."""
from __future__ import annotations

from bus.config import merge_defaults
from bus.daemon import Assembly, HubSpec, Runtime
from agents.model_manager_suite.services import ModelServices
from agents.model_manager_suite.handlers.gguf_model_manager import GGUFModelManager
from agents.model_manager_suite.handlers.model_manager_agent import ModelManagerAgent
from agents.model_manager_suite.handlers.predictive_loader import PredictiveLoader
from agents.model_manager_suite.handlers.model_evaluation_framework import ModelEvaluationFramework

VERSION = "0.1.0"

HANDLER_CLASSES = (GGUFModelManager, ModelManagerAgent, PredictiveLoader, ModelEvaluationFramework)

DEFAULTS: dict = merge_defaults(*(cls.DEFAULTS for cls in HANDLER_CLASSES))
ENV_MAP: dict[str, tuple[str, ...]] = {"MODELS_DIR": ("models", "dirs")}


def build(runtime: Runtime) -> Assembly:
    services = ModelServices(settings=runtime.settings, data_dir=runtime.data_dir, events=runtime.events,
                             tokens=runtime.tokens, metrics=runtime.metrics.registry)
    handlers = [cls(services) for cls in HANDLER_CLASSES]
    return Assembly(handlers=handlers, close=[services.close])


SPEC = HubSpec(
    name="model_manager_suite", title="ModelManagerSuite", version=VERSION,
    ports={"native_port": 7011, "http_port": 7111, "events_port": 7311},
    defaults=DEFAULTS, env_map=ENV_MAP, build=build,
)
