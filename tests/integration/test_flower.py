"""Flower as the README says: its API behind basic auth, and a failing run named as failed.

A real ``celery -A worker flower`` and a real worker (subprocesses) watch a
run whose assertion fails: every task succeeds as a task, and the result of
``pmrunner.finalize_run`` says the run failed. Without authentication and
without ``FLOWER_UNAUTHENTICATED_API``, Flower's ``/api`` answers 401.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import requests
from celery import Celery

from runtime.loading import VariableFile
from tasks.context import Services
from tasks.dispatch import RunRequest, start_run
from tasks.finalize import wait_for_report
from tests.echo_server import serve
from tests.integration.api_helpers import free_port
from tests.integration.conftest import ROOT, WorkerProcess, wait_until
from worker.settings import Settings

pytestmark = pytest.mark.integration
CREDENTIALS = ("admin", "flower-test-password")
LOOPBACK = "--address=127.0.0.1"


@contextmanager
def flower(settings: Settings, extra_env: dict[str, str]) -> Iterator[str]:
    """``celery -A worker flower`` on a free loopback port; yields its base URL."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "worker", "flower", f"--port={port}", LOOPBACK],
        cwd=ROOT,
        env={**os.environ, **settings.to_env(), **extra_env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: _answers(url + "/healthcheck"), timeout=30, what="Flower started")
        yield url
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(20)


def _answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=2).status_code == 200
    except requests.ConnectionError:
        return False


def failing_collection(base_url: str) -> dict[str, Any]:
    test = 'pm.test("is 404", () => pm.response.to.have.status(404));'
    return {
        "info": {"_postman_id": "coll-flower", "name": "flower"},
        "item": [
            {
                "name": "get",
                "request": {"method": "GET", "url": f"{base_url}/get"},
                "event": [{"listen": "test", "script": {"exec": [test]}}],
            }
        ],
    }


def finalize_tasks(url: str, run_id: str) -> list[dict[str, Any]]:
    # Flower sees every worker's events on this Redis: ask for the finalizers only.
    params = {"taskname": "pmrunner.finalize_run", "sort_by": "-received"}
    tasks = requests.get(f"{url}/api/tasks", params=params, auth=CREDENTIALS, timeout=5).json()
    return [
        task
        for task in tasks.values()
        if task.get("name") == "pmrunner.finalize_run" and run_id in str(task.get("args"))
    ]


def test_flower_api_needs_its_basic_auth_and_shows_a_failing_run_as_failed(
    app: Celery, settings: Settings, worker_processes: list[WorkerProcess]
) -> None:
    with serve() as base_url, flower(settings, {"FLOWER_BASIC_AUTH": ":".join(CREDENTIALS)}) as url:
        assert requests.get(f"{url}/api/workers", timeout=5).status_code == 401
        assert requests.get(f"{url}/", timeout=5).status_code == 401
        # Task events from the start (-E): Flower turns them on only every few
        # seconds in the workers it sees, and this run is over sooner.
        queues = [settings.queue_for(settings.default_network)]
        worker = WorkerProcess(settings, queues, "fl", events=True)
        worker_processes.append(worker)
        worker.wait_ready(app)
        request = RunRequest(failing_collection(base_url), VariableFile("e", None, []))
        run_id = start_run(app, request)
        report = wait_for_report(Services.of(app), run_id, 60)
        assert report is not None and report["status"] == "failed"
        deadline = time.monotonic() + 30
        while not finalize_tasks(url, run_id) and time.monotonic() < deadline:
            time.sleep(0.5)
        finalizers = finalize_tasks(url, run_id)
        workers = requests.get(f"{url}/api/workers", auth=CREDENTIALS, timeout=5)
    assert workers.status_code == 200
    assert len(finalizers) == 1, finalizers
    assert finalizers[0]["state"] == "SUCCESS"  # as a task: pmrunner did its work
    assert "'status': 'failed'" in str(finalizers[0]["result"])
    assert "'assertionsFailed': 1" in str(finalizers[0]["result"])


def test_flower_api_without_authentication_is_refused(settings: Settings) -> None:
    env = {"FLOWER_BASIC_AUTH": "", "FLOWER_UNAUTHENTICATED_API": ""}
    with flower(settings, env) as url:
        answer = requests.get(f"{url}/api/workers", timeout=5)
    assert answer.status_code == 401
