"""Typed settings of ModelManagerSuite and the query-string coercion of its schemas."""
from __future__ import annotations

import pytest

from agents.model_manager_suite.hub import SPEC
from agents.model_manager_suite.settings import ModelManagerSuiteSettings
from bus.config import ConfigError
from bus.errors import BadRequest
from bus.settings import from_mapping, to_mapping
from schemas.model_manager_suite import gguf_model_manager as gguf_schema
from schemas.model_manager_suite import predictive_loader as loader_schema


def test_the_hub_defaults_are_the_typed_defaults() -> None:
    assert SPEC.settings_class is ModelManagerSuiteSettings
    defaults = to_mapping(ModelManagerSuiteSettings())
    assert from_mapping(ModelManagerSuiteSettings, defaults) == ModelManagerSuiteSettings()


@pytest.mark.parametrize(("section", "key", "value", "reason"), [
    ("models", "vram_fraction", 1.5, "<= 1.0"),
    ("models", "vram_fraction", 0.0, "(0, 1]"),
    ("models", "n_threads", 0, ">= 1"),
    ("models", "queue_limit", 0, ">= 1"),
    ("predictive_loader", "recency_tau_s", 0.0, "> 0"),
    ("model_evaluation", "alpha", 2.0, "<= 1.0"),
    ("model_facts", "backoff_max_s", 0.5, "backoff_initial_s"),
    ("model_manager_agent", "stt_approval_ttl_s", -1.0, ">= 0.0"),
    ("gguf_model_manager", "legacy_timeout_s", "soon", "must be float"),
])
def test_out_of_range_settings_name_the_key_and_the_reason(section: str, key: str, value: object,
                                                           reason: str) -> None:
    with pytest.raises(ConfigError) as refused:
        from_mapping(ModelManagerSuiteSettings, {section: {key: value}})
    assert f"{section}.{key}" in str(refused.value) and reason in str(refused.value)


def test_query_strings_become_typed_values_at_the_edge() -> None:
    args = gguf_schema.LIST_MODELS.validate({"rescan": "yes", "include_invalid": "0"})
    assert args == {"rescan": True, "include_invalid": False}
    assert gguf_schema.LIST_MODELS.validate({}) == {"rescan": False, "include_invalid": True}
    load = gguf_schema.LOAD_MODEL.validate({"model_id": "m", "pin": 1, "priority": " 3 ", "n_ctx": "512"})
    assert load == {"model_id": "m", "pin": True, "priority": 3, "n_ctx": 512}
    predict = gguf_schema.PREDICT.validate({"model_id": "m", "prompt": "x", "temperature": "0.5", "seed": "7"})
    assert predict["temperature"] == 0.5 and predict["seed"] == 7 and predict["max_tokens"] == 256
    assert loader_schema.PRELOAD.validate({"model_id": "m", "evict": "off"})["evict"] is False
    for schema, args, message in [
        (gguf_schema.LIST_MODELS, {"rescan": "maybe"}, "field 'rescan' must be boolean, got 'maybe'"),
        (gguf_schema.LOAD_MODEL, {"model_id": "m", "priority": "high"},
         "field 'priority' must be integer, got 'high'"),
        (gguf_schema.PREDICT, {"model_id": "m", "prompt": "x", "top_p": "wide"},
         "field 'top_p' must be number, got 'wide'"),
        (gguf_schema.PREDICT, {"model_id": "m", "prompt": "x", "max_tokens": 0}, "field 'max_tokens' must be >= 1"),
    ]:
        with pytest.raises(BadRequest, match=message):
            schema.validate(args)
