from __future__ import annotations

import pytest

from tests.support.hubproc import HubProcess

ECHO_CONFIG = {"hub": {"workers": 4, "drain_timeout_s": 10.0}}
TIGHT_CONFIG = {"hub": {"workers": 2, "queue_limit": 6}}


@pytest.fixture(scope="module")
def echo_hub(tmp_path_factory):
    with HubProcess("echo_hub", tmp_path_factory.mktemp("echo"), module="tests.bus.echo_hub",
                    config=ECHO_CONFIG) as hub:
        yield hub


@pytest.fixture(scope="module")
def tight_hub(tmp_path_factory):
    """Two workers and room for six pending requests: for `busy`."""
    with HubProcess("echo_hub", tmp_path_factory.mktemp("tight"), module="tests.bus.echo_hub",
                    config=TIGHT_CONFIG) as hub:
        yield hub
