"""Who the API counts as the client: the address that connected, unless a proxy is trusted.

uvicorn believes ``X-Forwarded-For`` from 127.0.0.1 by default; pmrunner
turns that off unless ``PMRUNNER_API_TRUSTED_PROXIES`` names the proxies,
so a key guesser on the host cannot pick a fresh address per request.
"""

from __future__ import annotations

import dataclasses
from collections import Counter

import pytest
import requests

# The *_fixture names are fixtures: pytest finds them under the names their decorators give.
from tests.integration.api_helpers import (  # noqa: F401
    api_settings_fixture,
    api_url_fixture,
    echo_url_fixture,
    served,
)
from worker.settings import Settings

pytestmark = pytest.mark.integration
WRONG_KEY = {"x-api-key": "not-the-key"}


def statuses(url: str, count: int, forwarded_for: list[str]) -> Counter[int]:
    """Status codes of ``count`` wrong-key requests, each claiming the next address."""
    seen: Counter[int] = Counter()
    with requests.Session() as session:
        for n in range(count):
            headers = {**WRONG_KEY, "X-Forwarded-For": forwarded_for[n % len(forwarded_for)]}
            answer = session.get(f"{url}/collections/c/runs", headers=headers, timeout=10)
            seen[answer.status_code] += 1
    return seen


def rotating(count: int) -> list[str]:
    return [f"198.18.{n // 250}.{n % 250 + 1}" for n in range(count)]


def test_rotating_forwarded_for_does_not_change_the_rate_limit(
    api_url: str, api_settings: Settings
) -> None:
    limit = api_settings.api_rate_limit  # the default: 300 a minute
    seen = statuses(api_url, 1000, rotating(1000))
    assert seen == Counter({401: limit, 429: 1000 - limit})


def test_forwarded_for_counts_only_from_a_trusted_proxy(
    app: object, api_settings: Settings
) -> None:
    trusting = dataclasses.replace(api_settings, api_trusted_proxies=("127.0.0.0/8",))
    limit = trusting.api_rate_limit
    with served(trusting) as url:
        assert statuses(url, limit + 10, rotating(limit + 10)) == Counter({401: limit + 10})
        one_client = statuses(url, limit + 1, ["198.18.9.9"])
    assert one_client == Counter({401: limit, 429: 1})
