"""Schemathesis against the service's own ``/openapi.json`` (issue 13): every operation, valid and
invalid inputs, as every role and as nobody — never a server error. Examples are bounded and
derandomised, so the run takes seconds and fails the same way twice."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

pytestmark = pytest.mark.slow
CALLERS = ("analyst", "service", "township", "anonymous")
EXAMPLES = 5  # per operation, mode and caller: about 80 requests per caller


def _operations(app) -> list:
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    return [result.ok() for result in schema.get_all_operations()]


def test_the_openapi_document_declares_the_error_answers(client):
    paths = client.get("/openapi.json").json()["paths"]
    for path, methods in paths.items():
        if path in ("/healthz", "/readyz"):  # health checks: no token, no body
            continue
        for method, op in methods.items():
            assert {"401", "403", "404", "413", "422"} <= set(op["responses"]), (method, path)


@pytest.mark.parametrize("caller", CALLERS)
def test_no_server_error_for_any_generated_request(world, caller):
    headers = {} if caller == "anonymous" else world.headers(caller)
    operations = _operations(world.app)
    assert len(operations) >= 6
    modes = (schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE)
    strategy = st.one_of(*(op.as_strategy(generation_mode=m) for op in operations for m in modes))
    seen: list[tuple[str, int]] = []

    @settings(
        max_examples=EXAMPLES * len(operations) * len(modes),
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=strategy)
    def check(case) -> None:
        response = case.call(headers=headers)
        seen.append((case.operation.label, response.status_code))
        assert response.status_code < 500, (case.operation.label, case.path_parameters, case.query, case.body)

    check()
    statuses = {s for _, s in seen}
    assert len({label for label, _ in seen}) >= 5  # the examples reached most operations
    assert (401 in statuses) == (caller == "anonymous")
