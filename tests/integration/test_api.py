"""The HTTP API served by a real uvicorn on loopback, with real Redis and workers.

Every test talks HTTP (``requests``) to a server started here on
127.0.0.1; runs go through a real in-process Celery worker.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
from celery import Celery

from api.app import create_api
from api.ratelimit import ClientRateLimiter
from api.server import build_server, listening_socket
from pmrunner.errors import ConfigurationError
from runtime.reporters.run_shapes import build_report
from runtime.results import Assertion, Execution, RequestRecord, ResponseRecord, Run
from tasks.context import Services
from tests.echo_server import serve
from tests.integration.conftest import ROOT, in_process_worker, wait_until
from worker.settings import Settings

pytestmark = pytest.mark.integration
JSON = dict[str, Any]

KEY = "pmr-test-" + uuid.uuid4().hex
AUTH = {"x-api-key": KEY}
MONITOR_UID = "api-smoke"
COLLECTION_ID = "coll-api-smoke"
INVALID_KEY_BODY = {
    "error": {
        "name": "AuthenticationError",
        "message": "Invalid API Key. Every request requires a valid API Key to be sent.",
    }
}


@contextmanager
def served(settings: Settings, *, insecure_no_auth: bool = False) -> Iterator[str]:
    """The API for ``settings`` on a free loopback port, in a thread; yields its base URL."""
    app = create_api(settings, insecure_no_auth=insecure_no_auth)
    sock = listening_socket("127.0.0.1", 0)
    server = build_server(app)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    try:
        wait_until(lambda: server.started, timeout=15, what="the API server started")
        assert requests.get(url + "/metrics", timeout=5).status_code == 200
        yield url
    finally:
        server.should_exit = True
        thread.join(15)
        sock.close()
    assert not thread.is_alive(), "the API server did not stop"


def smoke_collection() -> JSON:
    """Two requests: one passing assertion, one failing (as in the seed's example)."""

    def test(script: str) -> list[JSON]:
        return [{"listen": "test", "script": {"exec": [script]}}]

    return {
        "info": {"_postman_id": COLLECTION_ID, "name": "API smoke"},
        "item": [
            {
                "id": "item-get",
                "name": "Sample GET Request",
                "request": {"method": "GET", "url": "{{baseUrl}}/get"},
                "event": test(
                    'pm.test("Status code is 200", () => pm.response.to.have.status(200));'
                ),
            },
            {
                "id": "item-post",
                "name": "Sample POST Request",
                "request": {
                    "method": "POST",
                    "url": "{{baseUrl}}/post",
                    "header": [{"key": "Content-Type", "value": "application/json"}],
                    "body": {"mode": "raw", "raw": '{"hello": "world"}'},
                },
                "event": test(
                    'pm.test("Status code is 400", () => pm.response.to.have.status(400));'
                ),
            },
        ],
    }


@pytest.fixture()
def echo_url() -> Iterator[str]:
    with serve() as url:
        yield url


@pytest.fixture()
def api_settings(settings: Settings, tmp_path: Path, echo_url: str) -> Settings:
    """The test's settings with an API key and a monitors.yaml holding one monitor."""
    (tmp_path / "collection.json").write_text(json.dumps(smoke_collection()))
    (tmp_path / "env.json").write_text(
        json.dumps({"name": "env", "values": [{"key": "baseUrl", "value": echo_url}]})
    )
    monitor = {
        "name": "API smoke",
        "uid": MONITOR_UID,
        "collection": "collection.json",
        "environment": "env.json",
        "schedule": {"cron": "0 0 1 1 *"},
    }
    monitors = tmp_path / "monitors.yaml"
    monitors.write_text(f"monitors:\n  - {json.dumps(monitor)}\n")
    return dataclasses.replace(settings, api_key=KEY, monitors_file=monitors)


@pytest.fixture()
def api_url(app: Celery, api_settings: Settings) -> Iterator[str]:
    with served(api_settings) as url:
        yield url


def worker_for(app: Celery, settings: Settings) -> Any:
    return in_process_worker(app, [settings.queue_for(settings.default_network)])


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


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


# --- Run a Monitor ----------------------------------------------------------------------


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
    assert run["stats"] == {
        "assertions": {"failed": 1, "total": 2},
        "requests": {"failed": 1, "total": 2},
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


# --- Collection Runs API ------------------------------------------------------------------


def stored_report(number: int, *, failed: bool, source: str, collection_id: str) -> JSON:
    """A report as finalize stores it, started ``number`` minutes before now."""
    started = datetime.now(UTC) - timedelta(minutes=number)
    execution = Execution(
        id=1,
        item_id="item-get",
        item_name="Sample GET Request",
        iteration=0,
        request=RequestRecord(method="GET", url="http://127.0.0.1:9/get"),
        response=ResponseRecord(
            code=500 if failed else 200, status="", size=12, response_time_ms=7.4
        ),
        assertions=[Assertion(name="Status code is 200", passed=not failed, error=None)],
        started_at=started,
    )
    if failed:
        execution.assertions[0].error = "expected response to have status code 200 but got 500"
    run = Run(
        collection_id=collection_id,
        collection_name="Stored",
        executions=[execution],
        started_at=started,
        finished_at=started + timedelta(seconds=2),
    )
    return build_report(run, run_id=f"run-{number:03d}", source=source)


@pytest.fixture()
def stored_runs(app: Celery) -> list[JSON]:
    """25 stored runs of ``coll-stored``: every third failed, sources alternating."""
    store = Services.of(app).store
    reports = [
        stored_report(
            number,
            failed=number % 3 == 0,
            source="monitor" if number % 2 else "api",
            collection_id="coll-stored",
        )
        for number in range(25)
    ]
    for report in reports:
        store.save(report)
    store.save(stored_report(99, failed=False, source="api", collection_id="coll-other"))
    return reports


def list_runs(api_url: str, collection_id: str = "coll-stored", **params: Any) -> Any:
    return requests.get(
        f"{api_url}/collections/{collection_id}/runs", params=params, headers=AUTH, timeout=10
    )


def test_runs_are_listed_newest_first_page_by_page(api_url: str, stored_runs: list[JSON]) -> None:
    seen: list[str] = []
    sizes: list[int] = []
    cursor: str | None = None
    for _ in range(10):  # bounded: three pages expected
        params = {"limit": 10} | ({"cursor": cursor} if cursor else {})
        answer = list_runs(api_url, **params)
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["meta"]["total"] == 25
        seen += [run["id"] for run in body["runs"]]
        sizes.append(len(body["runs"]))
        cursor = body["meta"].get("nextCursor")
        if cursor is None:
            assert "nextCursor" not in body["meta"]
            break
    assert sizes == [10, 10, 5]
    assert seen == [report["id"] for report in stored_runs]  # run-000 is the newest
    default = list_runs(api_url).json()
    assert len(default["runs"]) == 10
    summary = default["runs"][0]
    assert set(summary) == {
        "id",
        "status",
        "source",
        "startedAt",
        "finishedAt",
        "stats",
        "collectionId",
        "environmentId",
        "createdBy",
    }
    assert summary["stats"] == {
        "requests": {"total": 1, "failed": 1},
        "assertions": {"total": 1, "failed": 1},
    }


def test_runs_are_filtered_by_status_and_source(api_url: str, stored_runs: list[JSON]) -> None:
    def ids(**params: Any) -> list[str]:
        answer = list_runs(api_url, limit=100, **params)
        assert answer.status_code == 200, answer.text
        assert answer.json()["meta"]["total"] == len(answer.json()["runs"])
        return [run["id"] for run in answer.json()["runs"]]

    failed = [r["id"] for r in stored_runs if r["status"] == "failed"]
    by_monitor = [r["id"] for r in stored_runs if r["source"] == "monitor"]
    assert ids(status="failed") == failed
    assert ids(status="finished") == [r["id"] for r in stored_runs if r["id"] not in failed]
    assert ids(source="monitor") == by_monitor
    assert ids(status="failed", source="monitor") == [i for i in failed if i in by_monitor]
    assert ids(status="running") == []
    assert ids(source="newman") == []


@pytest.mark.parametrize(
    "params",
    [
        {"limit": "0"},
        {"limit": "101"},
        {"limit": "abc"},
        {"limit": "-1"},
        {"limit": "9" * 5000},
        {"status": "done"},
        {"source": "cron"},
        {"cursor": "garbage"},
        {"cursor": "!!!"},
    ],
)
def test_bad_list_parameters_are_400(
    api_url: str, stored_runs: list[JSON], params: dict[str, str]
) -> None:
    answer = list_runs(api_url, **params)
    assert answer.status_code == 400, answer.text
    error = answer.json()["error"]
    assert error["name"] == "invalidParamError"
    assert next(iter(params)) in error["message"]


def test_limit_bounds_that_are_allowed(api_url: str, stored_runs: list[JSON]) -> None:
    assert len(list_runs(api_url, limit="1").json()["runs"]) == 1
    assert len(list_runs(api_url, limit="100").json()["runs"]) == 25


def test_unknown_collection_is_404(api_url: str, stored_runs: list[JSON]) -> None:
    answer = list_runs(api_url, "coll-never-ran")
    assert answer.status_code == 404
    assert answer.json()["error"]["name"] == "instanceNotFoundError"


def test_run_detail_and_its_404s(api_url: str, stored_runs: list[JSON]) -> None:
    def detail(collection_id: str, run_id: str) -> Any:
        url = f"{api_url}/collections/{collection_id}/runs/{run_id}"
        return requests.get(url, headers=AUTH, timeout=10)

    answer = detail("coll-stored", "run-003")
    assert answer.status_code == 200, answer.text
    run = answer.json()["run"]
    assert run["id"] == "run-003"
    assert run["status"] == "failed"
    assert run["duration"] == 2000
    assert run["collectionId"] == "coll-stored"
    assert run["executions"] == [
        {
            "id": "1",
            "itemName": "Sample GET Request",
            "request": {"method": "GET", "url": "http://127.0.0.1:9/get"},
            "response": {"statusCode": 500, "responseTime": 7, "responseSize": 12},
            "assertions": [
                {
                    "name": "Status code is 200",
                    "passed": False,
                    "error": "expected response to have status code 200 but got 500",
                }
            ],
        }
    ]
    # A Postman UID (<owner>-<id>) names the same collection.
    assert detail("12345678-coll-stored", "run-003").status_code == 200
    assert list_runs(api_url, "12345678-coll-stored").json()["meta"]["total"] == 25
    for collection_id, run_id in [
        ("coll-stored", "run-999"),  # not stored
        ("coll-other", "run-003"),  # another collection's run
        ("coll-stored", "run-099"),  # stored, but in coll-other
    ]:
        missing = detail(collection_id, run_id)
        assert missing.status_code == 404, (collection_id, run_id)
        assert missing.json()["error"]["name"] == "instanceNotFoundError"


# --- rate limit, OpenAPI, the command -------------------------------------------------------


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


def test_pmrunner_api_command_serves_and_never_logs_the_key(
    settings: Settings, tmp_path: Path
) -> None:
    port = free_port()
    env = {
        **os.environ,
        **dataclasses.replace(settings, api_key=KEY).to_env(),
        "PMRUNNER_DATA_DIR": str(tmp_path),
    }
    command = [sys.executable, "-m", "pmrunner.cli", "api", "--host", "127.0.0.1"]
    process = subprocess.Popen(
        [*command, "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:

        def answers() -> bool:
            try:
                return requests.get(url + "/health", timeout=2).status_code == 200
            except requests.ConnectionError:
                assert process.poll() is None, "pmrunner api exited"
                return False

        wait_until(answers, timeout=30, what="pmrunner api answered")
        no_source = requests.post(url + "/monitors/x/run", params={"apikey": KEY}, timeout=10)
        assert no_source.status_code == 404
    finally:
        process.terminate()
        output, _ = process.communicate(timeout=20)
    log = output.decode()
    assert "POST /monitors/x/run 404" in log
    assert KEY not in log


def test_pmrunner_api_command_refuses_to_start_without_a_key(settings: Settings) -> None:
    env = {**os.environ, **settings.to_env(), "PMRUNNER_API_KEY": ""}
    finished = subprocess.run(
        [sys.executable, "-m", "pmrunner.cli", "api", "--port", "0"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        timeout=60,
    )
    assert finished.returncode == 1
    assert finished.stderr.decode().startswith("error: PMRUNNER_API_KEY is not set")
    assert "--insecure-no-auth" in finished.stderr.decode()
