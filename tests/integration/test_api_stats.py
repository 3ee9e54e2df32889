"""The API's run stats are the json reporter's, for the same collection.

One collection fails assertions on answered requests, the other sends a
request nobody answers (a refused connection). Each runs as a monitor
through the API and a real worker, and with ``pmrunner run --reporters
json``; the requests and assertions counts (total, failed) of the Run a
Monitor answer, the Collection Runs API's summary and its detail all equal
the json report's ``run.stats``.
"""

from __future__ import annotations

import dataclasses
import json
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import requests
from celery import Celery

from tests.integration.api_helpers import AUTH, KEY, served, smoke_collection, worker_for
from tests.integration.conftest import ROOT
from tests.integration.scheduler_helpers import base_url as base_url
from tests.integration.scheduler_helpers import write_monitors
from worker.app import create_app
from worker.settings import Settings

pytestmark = pytest.mark.integration
JSON = dict[str, Any]


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def unanswered_collection(port: int) -> JSON:
    """One answered request with a passing and a failing assertion, one refused request."""

    def tests(*lines: str) -> list[JSON]:
        return [{"listen": "test", "script": {"exec": list(lines)}}]

    return {
        "info": {"_postman_id": "coll-unanswered", "name": "Unanswered"},
        "item": [
            {
                "name": "answered",
                "request": {"method": "GET", "url": "{{baseUrl}}/get"},
                "event": tests(
                    'pm.test("is 200", () => pm.response.to.have.status(200));',
                    'pm.test("is 201", () => pm.response.to.have.status(201));',
                ),
            },
            {
                "name": "refused",
                "request": {"method": "GET", "url": f"http://127.0.0.1:{port}/nothing"},
                "event": tests('pm.test("is 200", () => pm.response.to.have.status(200));'),
            },
        ],
    }


def json_reporter_stats(collection: Path, environment: Path, tmp_path: Path) -> JSON:
    """``run.stats`` of the json report of ``pmrunner run`` (a subprocess, as a user runs it)."""
    report = tmp_path / f"{collection.stem}-report.json"
    command = [sys.executable, "-m", "pmrunner.cli", "run", str(collection), "-e", str(environment)]
    done = subprocess.run(
        [*command, "--reporters", "json", "--reporter-json-export", str(report)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert report.exists(), done.stderr
    return dict(json.loads(report.read_text())["run"]["stats"])


def counts(stats: JSON) -> JSON:
    return {
        kind: {k: stats[kind][k] for k in ("total", "failed")}
        for kind in ("requests", "assertions")
    }


def test_api_stats_equal_the_json_reporters_for_failed_assertions_and_failed_requests(
    app: Celery,  # its fixture cleans the test's keys up
    settings: Settings,
    tmp_path: Path,
    base_url: str,
) -> None:
    (tmp_path / "assertions.json").write_text(json.dumps(smoke_collection()))
    (tmp_path / "unanswered.json").write_text(json.dumps(unanswered_collection(closed_port())))
    monitors = write_monitors(
        tmp_path,
        base_url,
        [
            {
                "name": name,
                "uid": name,
                "collection": f"{name}.json",
                "environment": "env.json",
                "schedule": {"every": "1d"},
            }
            for name in ("assertions", "unanswered")
        ],
    )
    settings = dataclasses.replace(settings, api_key=KEY, monitors_file=monitors)
    runner = create_app(settings)
    seen: dict[str, list[JSON]] = {}
    with served(settings) as api_url, worker_for(runner, settings):
        for name in ("assertions", "unanswered"):
            answer = requests.post(f"{api_url}/monitors/{name}/run", headers=AUTH, timeout=90)
            assert answer.status_code == 200, answer.text
            result = answer.json()["run"]
            runs_url = f"{api_url}/collections/{result['info']['collectionUid']}/runs"
            summary = requests.get(runs_url, headers=AUTH, timeout=10).json()["runs"][0]
            detail = requests.get(f"{runs_url}/{summary['id']}", headers=AUTH, timeout=10).json()
            assert summary["id"] == result["info"]["jobId"]
            seen[name] = [result["stats"], summary["stats"], detail["run"]["stats"]]

    for name in ("assertions", "unanswered"):
        expected = counts(
            json_reporter_stats(tmp_path / f"{name}.json", tmp_path / "env.json", tmp_path)
        )
        for stats in seen[name]:
            assert counts(stats) == expected, name
    # What the two collections do, as newman counts it.
    assert counts(seen["assertions"][0]) == {
        "requests": {"total": 2, "failed": 0},
        "assertions": {"total": 2, "failed": 1},
    }
    assert counts(seen["unanswered"][0]) == {
        "requests": {"total": 2, "failed": 1},
        "assertions": {"total": 3, "failed": 2},
    }
