"""schemathesis against the server's own OpenAPI schema: generated requests, schema-valid and
not, for every operation, a bounded number of examples each; no 500, and every response
matches the schema (status codes, content types, bodies).

Generated images are never real pictures, so schema-valid bodies still end as 400s (bad
image): the check that valid data is accepted does not apply here and is left out.
"""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.generation import GenerationMode
from schemathesis.specs.openapi.checks import positive_data_acceptance

pytestmark = pytest.mark.slow
EXAMPLES = (
    20  # per operation and mode: 4 operations x 2 modes, about 20 s on a loaded 2-core machine
)


@pytest.mark.parametrize("mode", list(GenerationMode), ids=lambda mode: mode.value)
def test_the_server_keeps_its_schema_and_never_answers_500(served, mode):
    schema = schemathesis.openapi.from_url(served.url + "/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert {op.path for op in operations} >= {"/v1/chat/completions", "/v1/models", "/health"}
    for operation in operations:
        if mode is GenerationMode.NEGATIVE and not len(operation.body):
            continue  # nothing to make invalid in a request without parameters

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def check(case):
            response = case.call(headers=served.headers, timeout=60)
            assert response.status_code != 500, response.text
            case.validate_response(response, excluded_checks=[positive_data_acceptance])

        check()
