"""The served OpenAPI document holds: schemathesis against the live API (no 5xx, no violation).

Every operation of ``/openapi.json`` gets generated requests, valid and
invalid, with the API key; schemathesis checks each answer against the
document (status codes, content types, bodies, headers). Bounded: a few
dozen examples per operation.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode

from tests.integration.api_helpers import AUTH, served
from worker.settings import Settings

pytestmark = pytest.mark.integration
MAX_EXAMPLES = 40


@pytest.fixture()
def api_url(app: Any, settings: Settings) -> Iterator[str]:
    # No rate limit here: the claim is the document, and 429 answers would
    # hide what the other answers say (the limit has its own tests).
    with served(dataclasses.replace(settings, api_key=AUTH["x-api-key"], api_rate_limit=0)) as url:
        yield url


@pytest.mark.parametrize("mode", list(GenerationMode), ids=str)
def test_the_api_answers_as_its_openapi_document_says(api_url: str, mode: GenerationMode) -> None:
    schema = schemathesis.openapi.from_url(api_url + "/openapi.json", headers=AUTH)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) == 7, "every endpoint but /openapi.json is in the served document"
    for operation in operations:
        if mode is GenerationMode.NEGATIVE and not list(operation.iter_parameters()):
            continue  # /health and /metrics take nothing that could be invalid

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(
            max_examples=MAX_EXAMPLES,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def answers_as_documented(case: Any) -> None:
            case.call_and_validate(base_url=api_url, headers=AUTH, timeout=10)

        answers_as_documented()
