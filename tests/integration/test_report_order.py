"""Request steps before reports: a report waits only while request steps wait.

Real Redis, a real Celery worker (threads pool) consuming only its network's
queue (as a subnet worker does: the control queue is added by the worker
itself), and the loopback echo server.
"""

from __future__ import annotations

import threading
import uuid
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from celery import Celery, signals

from runtime.loading import VariableFile
from tasks.context import Services
from tasks.dispatch import RunRequest, start_run
from tasks.finalize import wait_for_report
from tasks.messages import EXECUTE_REQUEST, FINALIZE_RUN
from tests.echo_server import serve
from tests.integration.conftest import in_process_worker
from worker.settings import Settings

pytestmark = pytest.mark.integration
JSON = dict[str, Any]


def independent_requests(count: int, path: str) -> JSON:
    """``count`` GETs out of the cookie jar: each its own branch of the run."""
    return {
        "info": {"_postman_id": uuid.uuid4().hex, "name": "report order"},
        "item": [
            {
                "name": f"r{n}",
                "request": {"method": "GET", "url": "{{baseUrl}}" + f"{path}?n={n}"},
                "protocolProfileBehavior": {"disableCookies": True},
            }
            for n in range(count)
        ],
    }


@pytest.fixture()
def base_url() -> Iterator[str]:
    with serve() as url:
        yield url


@pytest.fixture()
def started_tasks() -> Iterator[list[tuple[str, str]]]:
    """(task name, first argument) of every task this process's worker starts, in order."""
    started: list[tuple[str, str]] = []
    lock = threading.Lock()

    def record(task: Any = None, args: Any = None, **_: Any) -> None:
        with lock:
            started.append((task.name, str(args[0]) if args else ""))

    signals.task_prerun.connect(record, weak=False)
    yield started
    signals.task_prerun.disconnect(record)


def test_a_queued_report_waits_behind_the_request_steps_of_other_runs(
    app: Celery, settings: Settings, base_url: str, started_tasks: list[tuple[str, str]]
) -> None:
    variables = VariableFile("env", None, [{"key": "baseUrl", "value": base_url}])
    # A report queued first, then 200 request steps: the worker starts with none running.
    app.send_task(FINALIZE_RUN, ("a-run-that-ended-before",))
    run_id = start_run(app, RunRequest(independent_requests(200, "/get"), variables))
    with in_process_worker(app, [settings.queue_for(settings.default_network)], concurrency=8):
        report = wait_for_report(Services.of(app), run_id, 60)
        assert report is not None, "a worker of the run's network alone did not report it"
    assert len(report["run"]["executions"]) == 200
    order = [run for name, run in started_tasks if name in (EXECUTE_REQUEST, FINALIZE_RUN)]
    steps = [index for index, (name, _) in enumerate(started_tasks) if name == EXECUTE_REQUEST]
    queued_report = order.index("a-run-that-ended-before")
    assert queued_report > max(steps), "the report was taken before waiting request steps"
    assert len(steps) == 200


def test_a_busy_worker_reports_its_runs_after_their_requests(
    app: Celery, settings: Settings, base_url: str, started_tasks: list[tuple[str, str]]
) -> None:
    variables = VariableFile("env", None, [{"key": "baseUrl", "value": base_url}])
    services = Services.of(app)
    with in_process_worker(app, [settings.queue_for(settings.default_network)], concurrency=8):
        # Alone on the worker: the last step reports the run itself, the callback finds it done.
        alone = start_run(app, RunRequest(independent_requests(1, "/get"), variables))
        assert wait_for_report(services, alone, 30) is not None
        # Thirty runs at once, their requests 200 ms long: a run ends while others run.
        runs = [
            start_run(app, RunRequest(independent_requests(2, "/delay/200"), variables))
            for _ in range(30)
        ]
        reports = {run: wait_for_report(services, run, 60) for run in runs}
    assert all(report is not None for report in reports.values()), "a run was not reported"
    assert all(len(report["run"]["executions"]) == 2 for report in reports.values() if report)
    finalizers = Counter(run for name, run in started_tasks if name == FINALIZE_RUN)
    assert finalizers[alone] == 1, "an idle worker's run needed a second finalizer"
    # A busy worker's step left the report to a finalizer of its own, besides the callback.
    assert any(finalizers[run] == 2 for run in runs)
