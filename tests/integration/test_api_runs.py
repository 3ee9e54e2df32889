"""The Collection Runs API over runs stored in real Redis.

Every test talks HTTP (``requests``) to a server started here on 127.0.0.1.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests
from celery import Celery

from runtime.reporters.run_shapes import build_report
from runtime.results import Assertion, Execution, RequestRecord, ResponseRecord, Run
from tasks.context import Services

# The *_fixture names are fixtures: pytest finds them under the names their decorators give.
from tests.integration.api_helpers import (  # noqa: F401
    AUTH,
    JSON,
    api_settings_fixture,
    api_url_fixture,
    echo_url_fixture,
)

pytestmark = pytest.mark.integration


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
        "monitor",
    }
    assert summary["monitor"] is None  # stored without a monitor
    # A 500 answer is a response: its request did not fail, its assertion did.
    assert summary["stats"] == {
        "requests": {"total": 1, "failed": 0},
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
        {"cursor": "nan"},
        {"cursor": "bmFuOng"},  # base64 of "nan:x"
        {"cursor": "1e3_x"},
        {"cursor": ""},
        {"cursor": "\uff11\uff12\uff13"},  # fullwidth digits: not the pattern's [0-9]
        {"cursor": "12_" + "a" * 65},
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


@pytest.mark.parametrize("cursor", ["0", "999999999999999", "1_x", "5_Z-9", "7_" + "a" * 64])
def test_every_cursor_the_document_allows_is_a_position(
    api_url: str, stored_runs: list[JSON], cursor: str
) -> None:
    answer = list_runs(api_url, cursor=cursor)
    assert answer.status_code == 200, answer.text
    started = [run["startedAt"] for run in answer.json()["runs"]]
    assert started == sorted(started, reverse=True)


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
