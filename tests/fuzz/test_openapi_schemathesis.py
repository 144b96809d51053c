"""Schemathesis against a running MemoryHub's ``/openapi.json`` (issue 18): every documented route, with a
valid admin token, with bounded generated examples; no input may produce ``internal`` (500), and every error
is the hub's error shape (503 ``unavailable`` is a legitimate answer: search is off in this hub)."""
from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from bus.errors import ERROR_CODES

from tests.support.hubproc import HubProcess

EXAMPLES_PER_OPERATION = 20


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    with HubProcess("memory_hub", tmp_path_factory.mktemp("openapi"), config={"search": {"enabled": False}}) as hub:
        yield hub


def test_no_generated_request_is_a_server_error(hub):
    schema = schemathesis.openapi.from_url(hub.http_url + "/openapi.json")
    headers = {"Authorization": f"Bearer {hub.token()}"}
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) > 20

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
