"""ModelManagerSuite's own settings: one frozen section per part, each defined next to the code that uses it.

The common sections (hub, storage, auth, ...) belong to the bus; ``hub.py`` reads the few common values it
needs and passes them explicitly.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from agents.model_manager_suite.evaluation_jobs import EvaluationSettings
from agents.model_manager_suite.handlers.gguf_model_manager import GGUFModelManagerSettings
from agents.model_manager_suite.handlers.model_manager_agent import ModelManagerAgentSettings
from agents.model_manager_suite.model_facts import ModelFactsSettings
from agents.model_manager_suite.models_settings import ModelsSettings
from agents.model_manager_suite.predictor import PredictorSettings
from agents.model_manager_suite.store import ModelStoreSqlSettings


@dataclass(frozen=True)
class ModelManagerSuiteSettings:
    models: ModelsSettings = field(default_factory=ModelsSettings)
    model_facts: ModelFactsSettings = field(default_factory=ModelFactsSettings)
    gguf_model_manager: GGUFModelManagerSettings = field(default_factory=GGUFModelManagerSettings)
    model_manager_agent: ModelManagerAgentSettings = field(default_factory=ModelManagerAgentSettings)
    predictive_loader: PredictorSettings = field(default_factory=PredictorSettings)
    model_evaluation: EvaluationSettings = field(default_factory=EvaluationSettings)
    sql: ModelStoreSqlSettings = field(default_factory=ModelStoreSqlSettings)
