"""Schemathesis against each running hub's ``/openapi.json`` (issue 18): every documented route, with a
valid admin token, with bounded generated examples; no input may produce ``internal`` (500), and every error
is the hub's error shape (503 ``unavailable`` is a legitimate answer: search is off in the MemoryHub)."""
from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from bus.errors import ERROR_CODES

from tests.support.hubproc import HubProcess

EXAMPLES_PER_OPERATION = 20


HUBS = {"memory_hub": ({"search": {"enabled": False}}, 20),
        "model_manager_suite": ({"models": {"dirs": []}, "predictive_loader": {"preload_enabled": False}}, 5)}


@pytest.mark.parametrize("name", sorted(HUBS))
def test_no_generated_request_is_a_server_error(tmp_path, name):
    config, minimum_operations = HUBS[name]
    with HubProcess(name, tmp_path, config=config) as hub:
        fuzz_every_operation(hub, minimum_operations)


def fuzz_every_operation(hub: HubProcess, minimum_operations: int) -> None:
    schema = schemathesis.openapi.from_url(hub.http_url + "/openapi.json")
    headers = {"Authorization": f"Bearer {hub.token()}"}
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= minimum_operations

    for operation in operations:
        @given(case=operation.as_strategy())
        @settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, database=None,
                  suppress_health_check=list(HealthCheck))
        def check(case) -> None:
            response = case.call(headers=headers, timeout=30)
            assert response.status_code != 500, (case.method, case.formatted_path, response.text[:300])
            if response.status_code >= 400:
                assert response.json()["error"]["code"] in ERROR_CODES

        check()
