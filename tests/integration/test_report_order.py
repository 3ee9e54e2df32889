"""Request steps before reports: a report waits only while request steps wait.

Real Redis, a real Celery worker (threads pool) consuming only its network's
queue (as a subnet worker does: the control queue is added by the worker
itself), and the loopback echo server.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from celery import Celery, signals

from runtime.loading import VariableFile
from tasks import report_order
from tasks.context import Services
from tasks.dispatch import RunRequest, start_run
from tasks.finalize import wait_for_report
from tasks.messages import EXECUTE_REQUEST, FINALIZE_RUN
from tasks.report_order import REPORT_WAIT_MAX, ReportPromoter
from tests.echo_server import serve
from tests.integration.conftest import in_process_worker
from worker.queues import SENT_AT_HEADER, priority_list
from worker.roles import REPORT_PRIORITY
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
    app: Celery,
    settings: Settings,
    base_url: str,
    started_tasks: list[tuple[str, str]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The 200 steps may take longer than a report's bounded wait on a loaded machine.
    monkeypatch.setattr(report_order, "REPORT_WAIT_MAX", 600.0)
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


# The upkeep looks every second; the worker then takes the report at its next BRPOP.
PROMOTION_MARGIN = 4.0


def test_a_report_waits_a_bounded_time_behind_a_stream_of_request_steps(
    app: Celery, settings: Settings, base_url: str, started_tasks: list[tuple[str, str]]
) -> None:
    variables = VariableFile("env", None, [{"key": "baseUrl", "value": base_url}])
    services = Services.of(app)
    client = services.registry.redis
    net_queue = settings.queue_for(settings.default_network)
    stream_seconds = 3 * (REPORT_WAIT_MAX + PROMOTION_MARGIN)
    stop_stream = threading.Event()
    stream_ends: list[float] = []

    def stream() -> None:
        """Keep 30 request steps waiting (at most 400 runs, ``stream_seconds``)."""
        ends_at = time.monotonic() + stream_seconds
        for _ in range(400):
            while client.llen(net_queue) >= 30 and not stop_stream.is_set():
                time.sleep(0.05)
            if stop_stream.is_set() or time.monotonic() > ends_at:
                break
            start_run(app, RunRequest(independent_requests(10, "/delay/100"), variables))
        stream_ends.append(time.monotonic())

    target = ""
    target_ended: list[float] = []

    def note_target_step(task: Any = None, args: Any = None, **_: Any) -> None:
        if task.name == EXECUTE_REQUEST and args and target and args[0] == target:
            target_ended.append(time.monotonic())

    feeder = threading.Thread(target=stream, name="request-stream", daemon=True)
    signals.task_postrun.connect(note_target_step, weak=False)
    try:
        with in_process_worker(app, [net_queue], concurrency=4):
            feeder.start()
            time.sleep(2)  # the worker is saturated by now
            target = start_run(app, RunRequest(independent_requests(1, "/get"), variables))
            report = wait_for_report(services, target, stream_seconds)
            reported = time.monotonic()
            assert report is not None, "the run was not reported"
            assert not stream_ends, "the stream of request steps stopped before the report"
            # Both finalizers of the run (the one left for later, the chord's callback) run once.
            deadline = time.monotonic() + REPORT_WAIT_MAX + PROMOTION_MARGIN
            while sum(1 for t in started_tasks if t == (FINALIZE_RUN, target)) < 2:
                assert time.monotonic() < deadline, "a finalizer of the run never ran"
                time.sleep(0.1)
            time.sleep(2)
    finally:
        stop_stream.set()
        signals.task_postrun.disconnect(note_target_step)
        feeder.join(30)
    waited = reported - target_ended[-1]
    assert waited <= REPORT_WAIT_MAX + PROMOTION_MARGIN, f"the report waited {waited:.1f} s"
    assert started_tasks.count((FINALIZE_RUN, target)) == 2, "a report message was duplicated"
    assert client.llen(services.registry.keys.run_finished(target)) == 0, "reported twice"
    assert [report["run"]["executions"][0]["response"]["code"]] == [200]


def test_promotion_moves_only_overdue_reports_oldest_first_each_once(
    app: Celery, settings: Settings
) -> None:
    services = Services.of(app)
    client = services.registry.redis
    reports = priority_list(settings.control_queue, REPORT_PRIORITY)
    first = priority_list(settings.control_queue, 0)
    now = time.time()

    def message(name: str, sent_at: float | None) -> str:
        headers = {} if sent_at is None else {SENT_AT_HEADER: sent_at}
        return json.dumps({"body": name, "headers": headers})

    client.rpush(first, "a waiting step")
    # kombu pushes on the left: the oldest is rightmost.
    client.lpush(reports, message("oldest", now - 9), message("unstamped", None))
    client.lpush(reports, message("old", now - 6), message("recent", now - 1))
    promoters = [ReportPromoter(services) for _ in range(2)]
    moved: list[int] = []
    racers = [threading.Thread(target=lambda p=p: moved.append(p.run_once(now))) for p in promoters]
    for racer in racers:
        racer.start()
    for racer in racers:
        racer.join()
    assert sorted(moved) == [0, 3]
    bodies = [json.loads(raw)["body"] for raw in client.lrange(first, 1, -1)]
    # BRPOP takes from the right: the oldest report first, then the next, all before the step.
    assert client.lindex(first, 0) == b"a waiting step"
    assert bodies == ["old", "unstamped", "oldest"]
    assert [json.loads(raw)["body"] for raw in client.lrange(reports, 0, -1)] == ["recent"]
