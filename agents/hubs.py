"""What the operator tools know of the two hubs without importing them (a hub's ``hub.py`` loads its stack).

* ``HUBS``: the names ``hubctl`` accepts for an endpoint, with each hub's name, native, HTTP and events ports
  (before PORT_OFFSET) and default data dir. Each hub's ``SPEC`` and ``bus/daemon.settings_for`` are the
  source; ``tests/ops/test_hubctl.py`` keeps these equal to them. ``make run`` (``agents/devrun.py``) starts these.
* ``forwarder_defaults()``: ``hubctl forward`` on MainPC relays the legacy ports of MemoryHub's three MainPC
  memory agents (``MAINPC_MEMORY_PORTS``) to MemoryHub on PC2 (the profile
  ``config/mainpc/hub_forwarder.yaml`` sets the addresses).
"""
from __future__ import annotations

from typing import Any

from bus.client import NamedHub

HUBS: dict[str, NamedHub] = {
    "memory": NamedHub(name="memory_hub", native_port=7010, http_port=7110, events_port=7310,
                       data_dir="./var/memory_hub"),
    "models": NamedHub(name="model_manager_suite", native_port=7011, http_port=7111, events_port=7311,
                       data_dir="./var/model_manager_suite"),
}

MAINPC_MEMORY_PORTS: tuple[int, ...] = (
    5713, 6713,          # MemoryClient, its health port
    5574, 6574, 6583,    # SessionMemoryAgent, its health ports (YAML, code)
    5715, 6715,          # KnowledgeBase, its health port
)


def forwarder_defaults() -> dict[str, Any]:
    """The relay's defaults layer (under its YAML file and flags): MemoryHub's MainPC ports."""
    return {"forwarder": {"ports": list(MAINPC_MEMORY_PORTS)}}
