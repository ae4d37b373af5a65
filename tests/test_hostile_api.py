"""The API under generated input (schemathesis, from its own OpenAPI document): no answer is a
5xx, and every answer matches what the document says of its status, type and body."""

from __future__ import annotations

from typing import Any

import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis import checks

from api.app import create_app
from hub.settings import Settings
from tests.conftest import ADMIN_TOKEN

# The document does not depend on the database: build it from the app itself.
_SPEC = create_app(
    Settings(database_url="postgresql://unused@127.0.0.1/unused", _env_file=None)
).openapi()  # type: ignore[call-arg]
schema = schemathesis.openapi.from_dict(_SPEC)


# What the issue asks of every answer. (Not `positive_data_acceptance`: JSON Schema cannot say
# everything the API checks, such as a GB/T 2260 province code or a valid check digit, so some
# schema-valid input is rightly a 422, which the document lists.)
CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_schema_conformance,
    checks.response_headers_conformance,
    checks.allow_header_conformance,
]


@schema.parametrize()
@settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck))
def test_generated_requests(case: Any, api_url: str) -> None:
    headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    case.call_and_validate(base_url=api_url, headers=headers, checks=CHECKS)
