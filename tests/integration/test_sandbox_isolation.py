"""Isolation between runs on a real worker: one thread, runs of different collections in turn."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from celery import Celery

from runtime.loading import VariableFile
from runtime.options import RunOptions, Timeouts
from tasks.dispatch import RunRequest
from tests.echo_server import serve
from tests.integration.conftest import WorkerProcess
from tests.integration.test_distributed import run_and_wait
from tests.unit.sandbox_helpers import (
    PLANT,
    REVEAL,
    SECRET,
    VICTIM,
    collection,
    secret_environment,
    within_run_collection,
)
from worker.settings import Settings

pytestmark = pytest.mark.integration


@pytest.fixture()
def base_url() -> Iterator[str]:
    with serve() as url:
        yield url


def passed(report: dict[str, Any]) -> list[tuple[str, bool]]:
    return [(a["name"], a["passed"]) for e in report["run"]["executions"] for a in e["assertions"]]


def test_a_secret_never_reaches_another_collections_run_on_the_same_worker_thread(
    app: Celery, settings: Settings, base_url: str, worker_processes: list[WorkerProcess]
) -> None:
    worker = WorkerProcess(
        settings, [settings.queue_for(settings.default_network)], "one-thread", concurrency=1
    )
    worker_processes.append(worker)
    worker.wait_ready(app)
    env = secret_environment(base_url)
    plain = VariableFile("env", "env-1", env[:1])
    quick = RunOptions(timeouts=Timeouts(script=1500))  # PLANT leaves a timer behind
    attacker = run_and_wait(
        app, RunRequest(collection("attacker", "{{baseUrl}}/get", PLANT), plain, options=quick)
    )
    assert ("planted", True) in passed(attacker)
    victim_collection = collection("victim", "{{baseUrl}}/headers", VICTIM, auth_token=True)
    victim = run_and_wait(app, RunRequest(victim_collection, VariableFile("env", "env-2", env)))
    assert passed(victim) == [("victim ran", True)]
    reveal = run_and_wait(app, RunRequest(collection("attacker", "{{baseUrl}}/get", REVEAL), plain))
    assert passed(reveal) and all(ok for _, ok in passed(reveal)), passed(reveal)
    assert SECRET not in json.dumps(reveal)
    # Scripts of one run still share their context, as in Postman.
    within = run_and_wait(app, RunRequest(within_run_collection(f"{base_url}/get")))
    assert passed(within) == [("helpers shared", True), ("global shared", True)]
