"""Property-based fuzzing of the HTTP API from its own OpenAPI document (schemathesis).

Every operation the document declares gets generated requests, valid and invalid by the schema;
the service must never answer 5xx, and every answer must match what the document declares
(status codes, media types, response schemas, headers). Bounded in examples per operation so
the run fits CI; the ``dev`` Hypothesis profile does not change these bounds.
"""

from __future__ import annotations

from typing import Any

import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import CheckFunction
from schemathesis.specs.openapi.checks import positive_data_acceptance

from tests.robustness.conftest import small_app

#: The document's Tensor schema spells out every rank up to the server's LOSS_SERVICE_MAX_RANK;
#: at rank 3 and 4 Hypothesis draws large nested lists and the run takes four times as long, for
#: no check that ranks 0 to 2 do not already make. Ranks beyond the limit are tested in
#: test_limits.py.
schema = schemathesis.openapi.from_asgi("/openapi.json", small_app(max_rank=2))

#: A JSON schema cannot say that a tensor is rectangular, that a target's shape follows the
#: input's, or that a class index is below the class count: schema-valid bodies are often not
#: computable, and the service rightly answers them 422. Everything else is checked.
NOT_APPLICABLE: list[CheckFunction] = [positive_data_acceptance]


@schema.parametrize()
@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
def test_api_conforms_to_its_openapi_document(case: schemathesis.Case[Any]) -> None:
    case.call_and_validate(excluded_checks=NOT_APPLICABLE)
