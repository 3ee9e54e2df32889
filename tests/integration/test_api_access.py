"""The API's open endpoints, its key, rate limit and OpenAPI document, on a real uvicorn.

Every test talks HTTP (``requests``) to a server started here on 127.0.0.1.
"""

from __future__ import annotations

import dataclasses
import json

import pytest
import requests
from celery import Celery

from api.app import create_api
from api.ratelimit import ClientRateLimiter
from pmrunner.errors import ConfigurationError

# The *_fixture names are fixtures: pytest finds them under the names their decorators give.
from tests.integration.api_helpers import (  # noqa: F401
    AUTH,
    INVALID_KEY_BODY,
    KEY,
    api_settings_fixture,
    api_url_fixture,
    echo_url_fixture,
    free_port,
    served,
)
from worker.settings import Settings

pytestmark = pytest.mark.integration


# --- open endpoints -------------------------------------------------------------------


def test_health_needs_no_key_and_reports_redis_and_the_monitor_source(api_url: str) -> None:
    answer = requests.get(api_url + "/health", timeout=10)
    assert answer.status_code == 200
    body = answer.json()
    assert body["status"] == "ok"
    assert body["redis"] == "ok"
    assert body["monitorSource"] == "healthy"


def test_health_is_503_when_redis_does_not_answer(settings: Settings) -> None:
    down = dataclasses.replace(
        settings, redis_url=f"redis://127.0.0.1:{free_port()}/0", api_key=KEY
    )
    with served(down) as url:
        answer = requests.get(url + "/health", timeout=15)
    assert answer.status_code == 503
    assert answer.json()["status"] == "unavailable"
    assert answer.json()["redis"] == "unreachable"
    assert answer.json()["monitorSource"] == "none"


def test_metrics_are_prometheus_text_without_a_key(api_url: str) -> None:
    requests.get(api_url + "/collections/nothing/runs", headers=AUTH, timeout=10)
    answer = requests.get(api_url + "/metrics", timeout=10)
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/plain")
    assert "pmrunner_runs_finished_total" in answer.text
    counted = [
        line
        for line in answer.text.splitlines()
        if line.startswith("pmrunner_api_requests_total{")
        and 'endpoint="/collections/{collectionId}/runs"' in line
        and 'method="GET"' in line
        and 'status="404"' in line
    ]
    assert counted, "the API's own request counter is missing"
    assert float(counted[0].rsplit(" ", 1)[1]) >= 1


# --- authentication ---------------------------------------------------------------------


def test_missing_or_wrong_key_is_401_and_the_right_key_passes(api_url: str) -> None:
    path = api_url + "/collections/nothing/runs"
    missing = requests.get(path, timeout=10)
    wrong = requests.get(path, headers={"x-api-key": KEY + "x"}, timeout=10)
    non_ascii = requests.get(path, headers={"x-api-key": "schl\u00fcssel".encode()}, timeout=10)
    assert (missing.status_code, missing.json()) == (401, INVALID_KEY_BODY)
    assert (wrong.status_code, wrong.json()) == (401, INVALID_KEY_BODY)
    assert (non_ascii.status_code, non_ascii.json()) == (401, INVALID_KEY_BODY)
    right = requests.get(path, headers=AUTH, timeout=10)
    assert right.status_code == 404
    assert right.json()["error"]["name"] == "instanceNotFoundError"
    for answer in (missing, wrong, right):
        assert KEY not in answer.text


def test_the_apikey_query_parameter_works_on_run_a_monitor_only(api_url: str) -> None:
    runs = requests.get(api_url + "/collections/nothing/runs", params={"apikey": KEY}, timeout=10)
    assert runs.status_code == 401
    unknown = api_url + "/monitors/no-such-monitor/run"
    assert requests.post(unknown, params={"apikey": KEY + "x"}, timeout=10).status_code == 401
    passed = requests.post(unknown, params={"apikey": KEY}, timeout=10)
    assert passed.status_code == 404, passed.text


def test_openapi_and_every_other_endpoint_need_the_key(api_url: str) -> None:
    assert requests.get(api_url + "/openapi.json", timeout=10).status_code == 401
    assert requests.post(api_url + "/monitors/x/run", timeout=10).status_code == 401
    assert requests.get(api_url + "/collections/x/runs/y", timeout=10).status_code == 401
    assert requests.get(api_url + "/monitors", timeout=10).status_code == 401
    assert (
        requests.get(api_url + "/monitors/x", params={"apikey": KEY}, timeout=10).status_code == 401
    )
    assert requests.get(api_url + "/no/such/route", timeout=10).status_code == 401


def test_unknown_routes_and_methods_answer_in_the_error_format(api_url: str) -> None:
    missing = requests.get(api_url + "/no/such/route", headers=AUTH, timeout=10)
    assert missing.status_code == 404
    assert missing.json()["error"]["name"] == "notFoundError"
    assert missing.json()["error"]["message"]
    wrong_method = requests.delete(api_url + "/collections/x/runs", headers=AUTH, timeout=10)
    assert wrong_method.status_code == 405
    assert wrong_method.json()["error"]["name"] == "methodNotAllowedError"


def test_the_api_refuses_to_start_without_a_key_unless_told(settings: Settings) -> None:
    with pytest.raises(ConfigurationError, match=r"PMRUNNER_API_KEY.*--insecure-no-auth"):
        create_api(settings)
    with served(settings, insecure_no_auth=True) as url:
        answer = requests.get(url + "/collections/nothing/runs", timeout=10)
    assert answer.status_code == 404
    assert answer.json()["error"]["name"] == "instanceNotFoundError"


# --- rate limit, OpenAPI ------------------------------------------------------------------


def test_clients_over_the_rate_limit_get_429_with_retry_after(
    app: Celery, api_settings: Settings
) -> None:
    limited = dataclasses.replace(api_settings, api_rate_limit=3)
    with served(limited) as url:
        path = url + "/collections/nothing/runs"
        answers = [requests.get(path, headers=AUTH, timeout=10) for _ in range(4)]
        # Requests without the key count against the address, not against the key.
        wrong = [requests.get(path, timeout=10) for _ in range(4)]
        health = requests.get(url + "/health", timeout=10)
    assert [a.status_code for a in answers] == [404, 404, 404, 429]
    assert [a.status_code for a in wrong] == [401, 401, 401, 429]
    for refused in (answers[-1], wrong[-1]):
        assert refused.json()["error"] == "rateLimited"
        assert refused.json()["message"]
        assert 1 <= int(refused.headers["Retry-After"]) <= 60
    assert health.status_code == 200


def test_the_window_slides_and_idle_clients_are_forgotten() -> None:
    now = [1000.0]
    limiter = ClientRateLimiter(2, 10.0, clock=lambda: now[0])
    assert limiter.check("a") is None
    now[0] += 4
    assert limiter.check("a") is None
    assert limiter.check("a") == pytest.approx(6.0)  # the first request leaves at 1010
    assert limiter.check("b") is None  # other clients have their own window
    now[0] += 6
    assert limiter.check("a") is None
    assert limiter.check("a") == pytest.approx(4.0)
    now[0] += 30
    assert limiter.check("c") is None
    assert len(limiter) == 1  # a and b were idle for a whole period


def test_openapi_document_lists_the_endpoints(api_url: str) -> None:
    answer = requests.get(api_url + "/openapi.json", headers=AUTH, timeout=10)
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("application/json")
    document = json.loads(answer.text)
    assert document["openapi"].startswith("3.1")
    assert set(document["paths"]) >= {
        "/monitors/{monitor_uid}/run",
        "/monitors",
        "/monitors/{monitor_uid}",
        "/collections/{collectionId}/runs",
        "/collections/{collectionId}/runs/{runId}",
        "/health",
        "/metrics",
    }
    assert all("getpostman" not in server["url"] for server in document["servers"])
    limit = next(
        p
        for p in document["paths"]["/collections/{collectionId}/runs"]["get"]["parameters"]
        if p.get("name") == "limit"
    )
    assert limit["schema"]["maximum"] == 100
