"""Typed settings of a hub: the common sections and the hub's own, from defaults, YAML, environment, flags.

Checked once at load (or while the hub is built): a bad value exits 2 naming the key and the reason."""
from __future__ import annotations

import argparse
import subprocess
import sys
from dataclasses import dataclass, field

import pytest
import yaml

from bus.config import ConfigError, HubSection, port_offset
from bus.daemon import CommonSettings, HubSpec, main, settings_for
from tests.bus.echo_hub import SPEC as ECHO
from tests.support.hubproc import REPO, free_offset


def load(tmp_path, config: dict | None = None, env: dict[str, str] | None = None, spec: HubSpec = ECHO,
         **flags: str):
    path = None
    if config is not None:
        path = tmp_path / "hub.yaml"
        path.write_text(yaml.safe_dump(config))
    args = argparse.Namespace(config=str(path) if path else None, data_dir=flags.get("data_dir"),
                              log_level=flags.get("log_level"))
    return settings_for(spec, args, env or {})


def config_error(tmp_path, config: dict, env: dict[str, str] | None = None) -> str:
    with pytest.raises(ConfigError) as err:
        load(tmp_path, config, env)
    return str(err.value)


def test_defaults_are_the_hubs_ports_and_data_dir(tmp_path):
    settings = load(tmp_path)
    assert isinstance(settings.common, CommonSettings)
    assert settings.common.hub == HubSection(native_port=7010, http_port=7110, events_port=7310)
    assert settings.common.storage.data_dir == "./var/echo_hub"
    assert settings.hub.echo.max_repeat == 1


def test_yaml_environment_then_flags(tmp_path):
    env = {"HUB_JWT_SECRET": "s3cret", "HUB_AUTH_REQUIRED": "false", "REDIS_URL": "redis://r:6379/0",
           "ECHO_MAX_REPEAT": "7", "HUB_LOG_LEVEL": "warning"}
    settings = load(tmp_path, {"hub": {"workers": 3}, "legacy": {"allow": ["10.0.0.1"]},
                               "neighbours": {"backoff": {"max_s": 9}}}, env, data_dir="/tmp/x", log_level="debug")
    common = settings.common
    assert common.hub.workers == 3 and common.legacy.allow == ("10.0.0.1",)
    assert common.neighbours.backoff.max_s == 9.0 and common.neighbours.backoff.initial_s == 1.0
    assert common.auth.secret == "s3cret" and common.auth.required is False
    assert common.storage.redis_url == "redis://r:6379/0" and common.storage.data_dir == "/tmp/x"
    assert common.logging.level == "debug"                       # the flag wins over the environment
    assert settings.hub.echo.max_repeat == 7                      # the hub's own env_map


@pytest.mark.parametrize("config,message", [
    ({"hub": {"workers": 0}}, "hub.workers: must be >= 1, got 0"),
    ({"hub": {"native_port": 70000}}, "hub.native_port: must be <= 65535, got 70000"),
    ({"hub": {"workers": "many"}}, "hub.workers: must be int, got str"),
    ({"http": {"request_timeout_s": 0}}, "http.request_timeout_s: must be >= 0.001"),
    ({"neighbours": {"backoff": {"factor": 0.5}}}, "neighbours.backoff.factor: must be >= 1.0"),
    ({"auth": {"algorithm": "none"}}, "auth.algorithm: must be one of"),
    ({"hub": {"wokers": 3}}, "hub.wokers: unknown config key"),
    ({"bogus": {}}, "bogus: unknown config key"),
    ({"echo": {"max_repeat": 0}}, "echo.max_repeat: must be >= 1, got 0"),
    ({"curve": {"enabled": True}}, "curve.enabled: needs server_secret_key and server_public_key"),
    ({"events": {"curve": True}}, "events.curve: needs curve.server_secret_key"),
    ({"hub": {"idempotency_window_s": 60.0}}, "hub.idempotency_running_s: must not exceed idempotency_window_s"),
    ({"legacy": {"agents": {"EchoAgent": {"ports": [0]}}}}, "legacy.agents.EchoAgent.ports: ports must be in"),
])
def test_bad_values_name_the_key_and_the_reason(tmp_path, config, message):
    assert message in config_error(tmp_path, config)


def test_bad_environment_values_name_the_variable(tmp_path):
    assert "(from the environment)" in config_error(tmp_path, {}, {"ECHO_MAX_REPEAT": "seven"})


@pytest.mark.parametrize("text", ["ture", "enabled", "2"])
def test_a_mistyped_switch_in_the_environment_is_refused_not_read_as_false(tmp_path, text):
    assert "HUB_AUTH_REQUIRED" in config_error(tmp_path, {}, {"HUB_AUTH_REQUIRED": text})


@pytest.mark.parametrize(("text", "required"), [("false", False), ("OFF", False), ("0", False), ("yes", True)])
def test_switch_words_in_the_environment(tmp_path, text, required):
    assert load(tmp_path, None, {"HUB_AUTH_REQUIRED": text}).common.auth.required is required


@pytest.mark.parametrize("offset", ["-5", "60000", "x"])
def test_a_port_offset_out_of_range_is_a_configuration_error(offset):
    with pytest.raises(ConfigError, match="PORT_OFFSET"):
        port_offset({"PORT_OFFSET": offset})


def test_legacy_agent_overrides_keep_only_what_was_set(tmp_path):
    settings = load(tmp_path, {"legacy": {"agents": {"EchoAgent": {"ports": [7202]}, "Other": {"enabled": False}}}})
    assert settings.common.legacy.agent_overrides() == {"EchoAgent": {"enabled": True, "ports": (7202,)},
                                                        "Other": {"enabled": False}}


def test_a_hub_section_may_not_shadow_a_common_one():
    @dataclass(frozen=True)
    class Shadowing:
        hub: dict = field(default_factory=dict)

    spec = HubSpec(name="x", title="X", version="0", ports={}, settings_class=Shadowing, env_map={},
                   build=ECHO.build)
    with pytest.raises(TypeError):
        settings_for(spec, argparse.Namespace(config=None, data_dir=None, log_level=None), {})


def test_print_config_masks_the_secret(capsys, monkeypatch):
    monkeypatch.setenv("HUB_JWT_SECRET", "do-not-print")
    assert main(ECHO, ["--print-config"]) == 0
    printed = capsys.readouterr().out
    tree = yaml.safe_load(printed)
    assert "do-not-print" not in printed and tree["auth"]["secret"] == "***"
    assert tree["echo"] == {"max_repeat": 1} and tree["hub"]["workers"] == 8


def test_config_error_at_load_exits_2(tmp_path, capsys):
    path = tmp_path / "bad.yaml"
    path.write_text("http:\n  max_body_bytes: 0\n")
    assert main(ECHO, ["--config", str(path)]) == 2
    assert capsys.readouterr().err.strip() == "echo_hub: configuration error: http.max_body_bytes: must be >= 1, got 0"


def test_config_error_while_the_hub_is_built_exits_2(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump({"hub": {"queue_limit": 5}, "echo": {"max_repeat": 6},
                                    "neighbours": {"error_bus": {"enabled": False},
                                                   "registration": {"enabled": False}}}))
    result = subprocess.run([sys.executable, "-m", "tests.bus.echo_hub", "--config", str(path), "--data-dir",
                             str(tmp_path / "data")], cwd=REPO, capture_output=True, text=True, timeout=60,
                            env={"PATH": "/usr/bin:/bin", "PORT_OFFSET": str(free_offset()), "PYTHONPATH": str(REPO)})
    assert result.returncode == 2, result.stderr
    assert "echo_hub: configuration error: echo.max_repeat: must not exceed hub.queue_limit" in result.stderr
