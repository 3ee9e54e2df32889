"""Run a Monitor through the HTTP API, with real Redis and workers.

Every test talks HTTP (``requests``) to a server started here on
127.0.0.1; runs go through a real in-process Celery worker.
"""

from __future__ import annotations

import dataclasses
import re
import time

import pytest
import requests
from celery import Celery

# The *_fixture names are fixtures: pytest finds them under the names their decorators give.
from tests.integration.api_helpers import (  # noqa: F401
    AUTH,
    COLLECTION_ID,
    JSON,
    KEY,
    MONITOR_UID,
    api_settings_fixture,
    api_url_fixture,
    echo_url_fixture,
    served,
    worker_for,
)
from tests.integration.conftest import wait_until
from worker.settings import Settings

pytestmark = pytest.mark.integration


def check_monitor_run_shape(body: JSON, echo_url: str) -> None:
    """The seed's ``{run: {info, stats, executions, failures}}`` with this collection's facts."""
    run = body["run"]
    assert set(run) == {"info", "stats", "executions", "failures"}
    info = run["info"]
    assert info["monitorId"] == MONITOR_UID
    assert info["collectionUid"] == COLLECTION_ID
    assert info["name"] == "API smoke"
    assert info["status"] == "failed"
    assert info["jobId"] and info["startedAt"] and info["finishedAt"]
    # Both requests got responses: none failed, one assertion did (the json reporter's counts).
    assert run["stats"] == {
        "assertions": {"failed": 1, "total": 2},
        "requests": {"failed": 0, "total": 2},
    }
    first, second = run["executions"]
    host = echo_url.removeprefix("http://")
    assert first["id"] == 1
    assert first["item"] == {"id": "item-get", "name": "Sample GET Request"}
    assert first["request"]["method"] == "GET"
    assert first["request"]["url"] == f"{host}/get"
    assert first["response"]["code"] == 200
    assert first["response"]["responseSize"] > 0
    assert first["assertions"] == {"Status code is 200": True}
    assert second["item"]["name"] == "Sample POST Request"
    assert second["request"]["body"] == {"contentLength": 18, "mode": "raw"}
    assert second["request"]["headers"]["content-type"] == "application/json"
    assert second["assertions"] == {"Status code is 400": False}
    (failure,) = run["failures"]
    assert failure["executionId"] == second["id"]
    assert failure["name"] == "AssertionError"
    assert failure["assertion"] == {"Status code is 400": False}
    assert "400" in failure["message"]


def test_run_a_monitor_waits_and_answers_with_the_monitor_run_result(
    app: Celery, settings: Settings, api_url: str, echo_url: str
) -> None:
    with worker_for(app, settings):
        by_header = requests.post(f"{api_url}/monitors/{MONITOR_UID}/run", headers=AUTH, timeout=90)
        by_query = requests.post(
            f"{api_url}/monitors/{MONITOR_UID}/run", params={"apikey": KEY}, timeout=90
        )
    assert by_header.status_code == 200, by_header.text
    assert by_query.status_code == 200, by_query.text
    check_monitor_run_shape(by_header.json(), echo_url)
    check_monitor_run_shape(by_query.json(), echo_url)
    job_ids = {by_header.json()["run"]["info"]["jobId"], by_query.json()["run"]["info"]["jobId"]}
    assert len(job_ids) == 2
    listed = requests.get(
        f"{api_url}/collections/{COLLECTION_ID}/runs",
        params={"source": "api"},
        headers=AUTH,
        timeout=10,
    ).json()
    assert listed["meta"]["total"] == 2
    assert {run["id"] for run in listed["runs"]} == job_ids
    assert all(run["source"] == "api" and run["status"] == "failed" for run in listed["runs"])


def test_run_a_monitor_of_an_unknown_monitor_is_404(api_url: str) -> None:
    answer = requests.post(api_url + "/monitors/no-such-monitor/run", headers=AUTH, timeout=10)
    assert answer.status_code == 404
    error = answer.json()["error"]
    assert error["name"] == "instanceNotFoundError"
    assert "no-such-monitor" in error["message"]


def test_run_a_monitor_without_a_monitor_source_is_404_saying_so(settings: Settings) -> None:
    with served(dataclasses.replace(settings, api_key=KEY)) as url:
        answer = requests.post(url + "/monitors/any/run", headers=AUTH, timeout=10)
    assert answer.status_code == 404
    assert answer.json()["error"]["name"] == "instanceNotFoundError"
    assert "PMRUNNER_MONITORS_FILE" in answer.json()["error"]["message"]


def test_a_bad_timeout_is_400(api_url: str) -> None:
    for value in ("abc", "0", "-3", "nan", "inf"):
        answer = requests.post(
            f"{api_url}/monitors/{MONITOR_UID}/run",
            params={"timeout": value},
            headers=AUTH,
            timeout=10,
        )
        assert answer.status_code == 400, value
        assert answer.json()["error"]["name"] == "invalidParamError"


def test_a_run_that_outlasts_the_wait_is_504_and_still_ends(
    app: Celery, settings: Settings, api_url: str
) -> None:
    # No worker consumes the queue yet: the run cannot finish within the wait.
    started = time.monotonic()
    answer = requests.post(
        f"{api_url}/monitors/{MONITOR_UID}/run",
        params={"timeout": "1.5"},
        headers=AUTH,
        timeout=30,
    )
    assert answer.status_code == 504, answer.text
    assert time.monotonic() - started < 10
    error = answer.json()["error"]
    assert error["name"] == "runTimeout"
    found = re.search(r"run ([0-9a-f]{32})", error["message"])
    assert found, error["message"]
    detail = f"{api_url}/collections/{COLLECTION_ID}/runs/{found[1]}"
    assert requests.get(detail, headers=AUTH, timeout=10).status_code == 404
    with worker_for(app, settings):
        wait_until(
            lambda: requests.get(detail, headers=AUTH, timeout=10).status_code == 200,
            timeout=60,
            what="the run's report stored",
        )
    run = requests.get(detail, headers=AUTH, timeout=10).json()["run"]
    assert run["source"] == "api"
    assert [e["itemName"] for e in run["executions"]] == [
        "Sample GET Request",
        "Sample POST Request",
    ]
