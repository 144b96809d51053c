"""Every MemoryHub legacy port answers a non-string `action` with its own unknown-action reply, never a crash."""
from __future__ import annotations

import pytest

from agents.memory_hub.hub import HANDLER_CLASSES
from tests.support.hubproc import HubProcess

MAIN_PORTS = sorted((cls.name, port) for cls in HANDLER_CLASSES for port in cls.legacy_ports)


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    with HubProcess("memory_hub", tmp_path_factory.mktemp("legacy-types")) as process:
        yield process


@pytest.mark.parametrize("agent, port", MAIN_PORTS)
@pytest.mark.parametrize("action", [{"nested": 1}, ["list"], 7, None])
def test_non_string_action_gets_a_legacy_error(hub, agent, port, action):
    reply = hub.legacy_request(port, {"action": action, "data": {}})
    assert isinstance(reply, dict)
    text = str(reply)
    assert "unhashable" not in text and "Traceback" not in text
    if agent == "UnifiedUtilsAgent":
        assert reply.get("status") == "error"
    else:
        assert reply.get("status") in ("error", "ERROR"), reply
