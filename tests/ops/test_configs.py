"""Host profiles, legacy startup-config snippets, systemd units and observability files are valid."""
from __future__ import annotations

import argparse
import configparser
import json
import re
import shutil
import subprocess
import warnings

import pytest
import yaml

from bus.daemon import LoadedSettings, settings_for
from bus.forwarder import load_relay_settings
from bus.metrics import HubMetrics
from tests.support.hubproc import REPO

CONFIG = REPO / "config"
PROFILES = {"memory_hub": CONFIG / "pc2" / "memory_hub.yaml",
            "model_manager_suite": CONFIG / "mainpc" / "model_manager_suite.yaml"}
UNITS = ("memory-hub", "model-manager-suite", "hub-forwarder")


def spec(hub: str):
    if hub == "memory_hub":
        from agents.memory_hub.hub import HANDLER_CLASSES, SPEC
    else:
        from agents.model_manager_suite.hub import HANDLER_CLASSES, SPEC
    return SPEC, HANDLER_CLASSES


def profile_settings(hub: str) -> LoadedSettings:
    args = argparse.Namespace(config=str(PROFILES[hub]), data_dir=None, log_level=None)
    return settings_for(spec(hub)[0], args, {})


@pytest.mark.parametrize("hub", sorted(PROFILES))
def test_host_profiles_load_with_the_hubs_defaults(hub):
    settings = profile_settings(hub).common
    assert settings.hub.host == "0.0.0.0" and settings.legacy.host == "0.0.0.0"
    assert settings.storage.data_dir.startswith("/var/lib/")
    assert settings.neighbours.registration.location in ("PC2", "MainPC")


PC2, MAINPC, LOOPBACK = "192.168.100.17", "192.168.100.16", "127.0.0.1"


@pytest.mark.parametrize("hub,own_address", [("memory_hub", PC2), ("model_manager_suite", MAINPC)])
def test_host_profiles_ship_the_two_pc_allow_list_and_their_own_registration_address(hub, own_address):
    settings = profile_settings(hub).common
    assert sorted(settings.legacy.allow) == sorted([LOOPBACK, PC2, MAINPC])
    assert settings.neighbours.registration.host == own_address
    forwarder_settings = load_relay_settings({}, str(CONFIG / "mainpc" / "hub_forwarder.yaml"), env={})
    assert sorted(forwarder_settings.forwarder.allow) == sorted([LOOPBACK, PC2, MAINPC])


def test_pc2_profile_documents_the_allow_list_and_mainpc_talks_to_pc2():
    text = PROFILES["memory_hub"].read_text()
    assert re.search(r"^\s*allow:", text, re.M) and "192.168.100.16" in text
    mainpc = profile_settings("model_manager_suite")
    assert mainpc.common.hub.http_port == 7111
    assert mainpc.hub.model_evaluation.trust_scorer_endpoint == "tcp://192.168.100.17:7122"


def test_forwarder_profile_relays_the_three_mainpc_memory_agents():
    section = load_relay_settings({}, str(CONFIG / "mainpc" / "hub_forwarder.yaml"), env={}).forwarder
    assert {5713, 5574, 5715} <= set(section.ports) and section.remote_host == "192.168.100.17"
    from agents.memory_hub.hub import HANDLER_CLASSES

    served = {p for cls in HANDLER_CLASSES for p in (*cls.legacy_ports, *cls.legacy_health_ports)}
    assert set(section.ports) <= served            # every relayed port is one MemoryHub binds


def _legacy_ports(handlers) -> dict[str, set[int]]:
    return {cls.name: {*cls.legacy_ports, *cls.legacy_health_ports} for cls in handlers if cls.legacy_ports}


def _as_sets(ports: dict[str, list[int]]) -> dict[str, set[int]]:
    return {name: set(values) for name, values in ports.items()}


def test_pc2_startup_snippet_is_the_list_form_with_port_offset():
    doc = yaml.safe_load((CONFIG / "startup_config" / "pc2_startup_config.yaml").read_text())
    [entry] = doc["pc2_services"]
    SPEC, handlers = spec("memory_hub")
    assert entry["name"] == "MemoryHub" and (REPO / entry["script_path"]).is_file()
    assert entry["port"] == f"${{PORT_OFFSET}}+{SPEC.ports['native_port']}"
    assert entry["health_check_port"] == f"${{PORT_OFFSET}}+{SPEC.ports['http_port']}"
    assert entry["dependencies"] == [] and entry["startup_order"] == 1 and entry["host"] == "0.0.0.0"
    assert _as_sets(entry["config"]["legacy_ports"]) == _legacy_ports(handlers)
    assert (REPO / entry["config"]["args"][1]).is_file()


def test_mainpc_startup_snippet_is_the_agent_groups_form():
    groups = yaml.safe_load((CONFIG / "startup_config" / "mainpc_startup_config.yaml").read_text())["agent_groups"]
    suite = groups["model_manager_suite"]["ModelManagerSuite"]
    SPEC, handlers = spec("model_manager_suite")
    assert (REPO / suite["script_path"]).is_file()
    assert (suite["port"], suite["health_check_port"]) == (SPEC.ports["native_port"], 7111)
    assert _as_sets(suite["config"]["legacy_ports"]) == _legacy_ports(handlers)
    relay = groups["memory_system"]["HubForwarder"]
    assert relay["dependencies"] == ["ModelManagerSuite"] and relay["startup_order"] > suite["startup_order"]
    assert relay["config"]["args"][0] == "forward" and (REPO / relay["config"]["args"][2]).is_file()


def _unit(name: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str
    parser.read(CONFIG / "systemd" / f"{name}.service")
    return parser


@pytest.mark.parametrize("name", UNITS)
def test_units_are_notify_services_with_watchdog_restart_and_hardening(name):
    unit = _unit(name)
    service = unit["Service"]
    assert service["Type"] == "notify" and int(service["WatchdogSec"]) > 0
    assert service["Restart"] == "on-failure" and service["User"] == "voicehub"
    for key, value in {"NoNewPrivileges": "yes", "ProtectSystem": "strict", "PrivateTmp": "yes",
                       "ProtectHome": "yes", "CapabilityBoundingSet": ""}.items():
        assert service[key] == value, key
    if name != "hub-forwarder":
        assert service["StateDirectory"] == name and "--config" in service["ExecStart"]
        assert f"--data-dir /var/lib/{name}" in service["ExecStart"] and service["KillMode"] == "mixed"
    sysusers = (CONFIG / "systemd" / "voice-hubs.sysusers.conf").read_text()
    assert re.search(r"^u voicehub ", sysusers, re.M)


def test_model_suite_waits_for_the_gpu_when_there_is_one():
    unit = _unit("model-manager-suite")["Unit"]
    assert "nvidia-persistenced.service" in unit["After"] and "nvidia-persistenced.service" in unit["Wants"]


def test_systemd_analyze_verify_accepts_the_units(tmp_path):
    tool = shutil.which("systemd-analyze")
    if tool is None:
        pytest.skip("systemd-analyze not installed (apt-get install -y systemd provides it)")
    paths = []
    for name in UNITS:       # as `make install-systemd` installs them: /opt/voice-hubs -> the checkout
        text = (CONFIG / "systemd" / f"{name}.service").read_text().replace("/opt/voice-hubs", str(REPO))
        path = tmp_path / f"{name}.service"
        path.write_text(text)
        paths.append(str(path))
    proc = subprocess.run([tool, "verify", *paths], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.strip() == "", proc.stderr          # no unknown keys, no bad values


# ------------------------------------------------------------------ observability

# Gauges the dashboard expects ModelManagerSuite to export (asked of the model engineers).
REQUESTED_MMS = {"mms_model_loaded", "mms_memory_budget_bytes", "mms_memory_used_bytes"}


def _metric_names_in(text: str) -> set[str]:
    return set(re.findall(r"\b((?:hub|mms)_[a-z_]+)\b", text))


def _hub_metric_names() -> set[str]:
    names = set()
    for family in HubMetrics("x").registry.collect():
        names.add(family.name)
        names.update(sample.name for sample in family.samples)
    names.update(f"{n}_bucket" for n in list(names))
    names.update({"hub_requests_total", "hub_errors_total", "hub_legacy_requests_total",
                  "hub_refused_peers_total", "hub_late_results_total", "hub_events_published_total"})
    return names


def _declared_mms_names() -> set[str]:
    source = "\n".join(p.read_text() for p in (REPO / "agents" / "model_manager_suite").rglob("*.py"))
    return set(re.findall(r"[\"'](mms_[a-z_]+)[\"']", source))


def test_dashboard_and_alerts_use_only_metrics_the_hubs_export():
    dashboard = json.loads((CONFIG / "observability" / "grafana-dashboard.json").read_text())
    exprs = "\n".join(t["expr"] for p in dashboard["panels"] for t in p.get("targets", []))
    alerts = yaml.safe_load((CONFIG / "observability" / "hub-alerts.yml").read_text())
    exprs += "\n" + "\n".join(rule["expr"] for group in alerts["groups"] for rule in group["rules"])
    used = _metric_names_in(exprs)
    hub_used = {n for n in used if n.startswith("hub_")}
    assert hub_used <= _hub_metric_names(), hub_used - _hub_metric_names()
    mms_used = {n for n in used if n.startswith("mms_")}
    declared = _declared_mms_names()
    assert mms_used - declared <= REQUESTED_MMS, mms_used - declared - REQUESTED_MMS
    missing = REQUESTED_MMS & (mms_used - declared)
    if missing:
        warnings.warn(f"dashboard panels waiting for ModelManagerSuite gauges: {sorted(missing)}", stacklevel=1)
    titles = " ".join(p["title"].lower() for p in dashboard["panels"])
    for topic in ("request rate", "latency", "error", "sql", "redis", "loaded models", "memory budget"):
        assert topic in titles, topic


def test_prometheus_scrapes_both_hubs_http_ports():
    prom = yaml.safe_load((CONFIG / "observability" / "prometheus.yml").read_text())
    assert "hub-alerts.yml" in prom["rule_files"]
    targets = {job["job_name"]: job["static_configs"][0]["targets"][0] for job in prom["scrape_configs"]}
    assert targets["memory-hub"].endswith(f":{profile_settings('memory_hub').common.hub.http_port}")
    assert targets["model-manager-suite"].endswith(f":{profile_settings('model_manager_suite').common.hub.http_port}")
    assert all(job.get("metrics_path", "/metrics") == "/metrics" for job in prom["scrape_configs"])
