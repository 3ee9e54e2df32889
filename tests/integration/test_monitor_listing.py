"""Runs carry their monitor; ``GET /monitors`` shows schedule, next slot and last run.

Two local monitors share one collection; runs go through a real worker, the
scheduler's poller writes the next slots, and every answer is checked
against the served OpenAPI document.
"""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import requests
import schemathesis
from celery import Celery

from tasks.context import Services
from tasks.schedule import build_scheduler
from tests.integration.api_helpers import AUTH, KEY, served, smoke_collection, worker_for
from tests.integration.scheduler_helpers import base_url as base_url
from tests.integration.scheduler_helpers import write_monitors
from worker.app import create_app
from worker.settings import Settings

pytestmark = pytest.mark.integration
COLLECTION_ID = smoke_collection()["info"]["_postman_id"]
MONITORS = "/monitors"
MONITOR = "/monitors/{monitor_uid}"
RUNS = "/collections/{collectionId}/runs"
RUN = "/collections/{collectionId}/runs/{runId}"


def monitors_file(folder: Path, base_url: str) -> Path:
    """Two monitors on one collection, and a paused one with its own environment."""
    (folder / "shared.json").write_text(json.dumps(smoke_collection()))
    (folder / "own-env.json").write_text(
        json.dumps({"name": "own", "values": [{"key": "baseUrl", "value": base_url}]})
    )
    return write_monitors(
        folder,
        base_url,
        [
            {
                "name": "Orders from Berlin",
                "uid": "orders-berlin",
                "collection": "shared.json",
                "environment": "env.json",
                "schedule": {"every": "1h"},
            },
            {
                "name": "Orders from Dublin",
                "uid": "orders-dublin",
                "collection": "shared.json",
                "environment": "own-env.json",
                "schedule": {"cron": "30 4 * * *", "timezone": "Europe/Dublin"},
            },
            {
                "name": "Paused",
                "uid": "paused",
                "collection": "shared.json",
                "schedule": {"every": "5m"},
                "active": False,
                # Sealed in the catalog: listing monitors opens it with the deployment's key.
                "webhooks": ["http://127.0.0.1:9/hook?token=sealed-in-the-catalog"],
            },
        ],
    )


def run_now(api_url: str, uid: str) -> str:
    answer = requests.post(f"{api_url}/monitors/{uid}/run", headers=AUTH, timeout=90)
    assert answer.status_code == 200, answer.text
    return str(answer.json()["run"]["info"]["jobId"])


def checked(schema: Any, path: str, answer: requests.Response) -> Any:
    assert answer.status_code == 200, answer.text
    schema[path]["GET"].validate_response(answer)
    return answer.json()


def test_monitors_show_schedule_next_slot_and_last_run_and_runs_carry_their_monitor(
    app: Celery,  # its fixture cleans the test's keys up
    settings: Settings,
    tmp_path: Path,
    base_url: str,
) -> None:
    settings = dataclasses.replace(
        settings, api_key=KEY, monitors_file=monitors_file(tmp_path, base_url)
    )
    runner = create_app(settings)
    scheduler = build_scheduler(runner)
    assert scheduler is not None
    before_poll = datetime.now(UTC)
    assert scheduler.poller.poll_once()  # the scheduler's next slots, as a running beat writes
    with served(settings) as api_url, worker_for(runner, settings):
        schema = schemathesis.openapi.from_url(api_url + "/openapi.json", headers=AUTH)
        empty = checked(
            schema, MONITORS, requests.get(api_url + MONITORS, headers=AUTH, timeout=10)
        )
        assert [m["lastRun"] for m in empty["monitors"]] == [None, None, None]
        berlin = run_now(api_url, "orders-berlin")
        dublin_first = run_now(api_url, "orders-dublin")
        dublin = run_now(api_url, "orders-dublin")
        listing = requests.get(api_url + MONITORS, headers=AUTH, timeout=10)
        one = requests.get(api_url + "/monitors/orders-dublin", headers=AUTH, timeout=10)
        unknown = requests.get(api_url + "/monitors/nobody", headers=AUTH, timeout=10)
        runs = requests.get(f"{api_url}/collections/{COLLECTION_ID}/runs", headers=AUTH, timeout=10)
        detail = requests.get(
            f"{api_url}/collections/{COLLECTION_ID}/runs/{berlin}", headers=AUTH, timeout=10
        )
        body = checked(schema, MONITORS, listing)
        single = checked(schema, MONITOR, one)["monitor"]
        listed_runs = checked(schema, RUNS, runs)["runs"]
        run_detail = checked(schema, RUN, detail)["run"]
    assert unknown.status_code == 404
    assert unknown.json()["error"]["name"] == "instanceNotFoundError"

    by_uid = {monitor["uid"]: monitor for monitor in body["monitors"]}
    assert [m["name"] for m in body["monitors"]] == [
        "Orders from Berlin",
        "Orders from Dublin",
        "Paused",
    ]
    assert by_uid["orders-dublin"] == single
    assert single["schedule"]["cron"] == "30 4 * * *"
    assert single["schedule"]["timezone"] == "Europe/Dublin"
    assert by_uid["orders-berlin"]["schedule"]["every_seconds"] == 3600
    # The next slots are the scheduler's: the first after the poll.
    hourly = datetime.fromisoformat(by_uid["orders-berlin"]["nextSlot"])
    assert hourly.minute == hourly.second == 0
    assert 0 < (hourly - before_poll).total_seconds() <= 3600
    dublin_slot = datetime.fromisoformat(single["nextSlot"])
    assert dublin_slot.astimezone(UTC).minute == 30
    assert by_uid["paused"]["active"] is False
    assert by_uid["paused"]["nextSlot"] is None  # paused: not scheduled
    assert by_uid["paused"]["lastRun"] is None
    # The last run is the newest one of each monitor.
    assert by_uid["orders-berlin"]["lastRun"]["id"] == berlin
    assert single["lastRun"]["id"] == dublin != dublin_first
    assert single["lastRun"]["status"] == "failed"  # the collection has a failing assertion
    assert single["lastRun"]["collectionId"] == COLLECTION_ID

    # Two monitors, one collection: the run list tells them apart.
    monitors_of_runs = {run["id"]: run["monitor"] for run in listed_runs}
    assert monitors_of_runs == {
        berlin: {"id": "orders-berlin", "name": "Orders from Berlin"},
        dublin_first: {"id": "orders-dublin", "name": "Orders from Dublin"},
        dublin: {"id": "orders-dublin", "name": "Orders from Dublin"},
    }
    assert run_detail["monitor"] == {"id": "orders-berlin", "name": "Orders from Berlin"}


def test_a_local_monitor_that_cannot_start_is_stored_under_its_collection_id(
    app: Celery,  # its fixture cleans the test's keys up
    settings: Settings,
    tmp_path: Path,
    base_url: str,
) -> None:
    path = monitors_file(tmp_path, base_url)
    settings = dataclasses.replace(settings, api_key=KEY, monitors_file=path)
    runner = create_app(settings)
    services = Services.of(runner)
    with served(settings) as api_url, worker_for(runner, settings):
        ran = run_now(api_url, "orders-dublin")
        # The environment breaks: the collection still reads, its id is the collection's.
        (tmp_path / "own-env.json").write_text("{ not json")
        no_env = requests.post(f"{api_url}/monitors/orders-dublin/run", headers=AUTH, timeout=60)
        # Then the collection too: the monitor's runs so far say where its runs go.
        (tmp_path / "shared.json").write_text("{ not json either")
        no_collection = requests.post(
            f"{api_url}/monitors/orders-dublin/run", headers=AUTH, timeout=60
        )
        for answer in (no_env, no_collection):
            assert answer.status_code == 200, answer.text
            assert answer.json()["run"]["info"]["status"] == "failed"
        failed_ids = [a.json()["run"]["info"]["jobId"] for a in (no_env, no_collection)]
        listed = requests.get(
            f"{api_url}/collections/{COLLECTION_ID}/runs", headers=AUTH, timeout=10
        ).json()["runs"]
        details = [
            requests.get(
                f"{api_url}/collections/{COLLECTION_ID}/runs/{run_id}", headers=AUTH, timeout=10
            )
            for run_id in failed_ids
        ]
    for run_id in failed_ids:
        report = services.store.get(run_id)
        assert report is not None
        assert report["collectionId"] == COLLECTION_ID, "not under the file's path"
        assert report["monitor"]["uid"] == "orders-dublin"
        assert report["error"].startswith("could not start")
    assert [run["id"] for run in listed] == [*reversed(failed_ids), ran]
    for detail in details:
        assert detail.status_code == 200, detail.text
        assert detail.json()["run"]["error"]["message"].startswith("could not start")
        assert detail.json()["run"]["monitor"]["id"] == "orders-dublin"
