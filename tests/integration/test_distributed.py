"""Distributed runs on real Celery workers and a real Redis: every run ends with one report."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
from celery import Celery

from runtime.loading import VariableFile
from runtime.options import RunOptions, Timeouts
from tasks.context import Services
from tasks.dispatch import RunRequest, start_run
from tasks.finalize import wait_for_report
from tasks.sweep import sweep
from tests.echo_server import serve
from tests.integration.conftest import ROOT, WorkerProcess, in_process_worker, wait_until
from worker.settings import Settings

pytestmark = pytest.mark.integration
JSON = dict[str, Any]


def item(name: str, method: str, url: str, tests: str = "", pre: str = "", **extra: Any) -> JSON:
    events = []
    if pre:
        events.append({"listen": "prerequest", "script": {"exec": pre.split("\n")}})
    if tests:
        events.append({"listen": "test", "script": {"exec": tests.split("\n")}})
    return {
        "id": f"id-{name}",
        "name": name,
        "request": {"method": method, "url": url},
        "event": events,
        **extra,
    }


def collection(*items: JSON) -> JSON:
    return {"info": {"_postman_id": uuid.uuid4().hex, "name": "distributed"}, "item": list(items)}


@pytest.fixture()
def base_url() -> Iterator[str]:
    with serve() as url:
        yield url


def environment(base_url: str, **values: str) -> VariableFile:
    entries = [{"key": "baseUrl", "value": base_url}]
    entries += [{"key": k, "value": v, "type": "secret"} for k, v in values.items()]
    return VariableFile("env", "env-1", entries)


def run_and_wait(app: Celery, request: RunRequest, timeout: float = 60) -> JSON:
    run_id = start_run(app, request)
    report = wait_for_report(Services.of(app), run_id, timeout)
    assert report is not None, f"run {run_id} did not report within {timeout} s"
    return report


def outcomes(report: JSON) -> list[tuple[str, list[tuple[str, bool]]]]:
    return [
        (e["item_name"], [(a["name"], a["passed"]) for a in e["assertions"]])
        for e in report["run"]["executions"]
    ]


class Rendezvous(BaseHTTPRequestHandler):
    """Holds each request until ``expected`` are in flight together (or 10 s pass).

    Requests sent one after another see one in flight at a time, so the most
    seen together tells parallel from sequential whatever the machine's load.
    """

    expected = 6
    in_flight = 0
    most_in_flight = 0
    changed = threading.Condition()

    def do_GET(self) -> None:
        cls = type(self)
        with cls.changed:
            cls.in_flight += 1
            cls.most_in_flight = max(cls.most_in_flight, cls.in_flight)
            cls.changed.notify_all()
            cls.changed.wait_for(lambda: cls.most_in_flight >= cls.expected, timeout=10)
        body = json.dumps({"args": dict(parse_qsl(urlsplit(self.path).query))}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        with cls.changed:
            cls.in_flight -= 1

    def log_message(self, *args: Any) -> None:
        pass


def test_independent_requests_run_in_parallel_and_report_once(
    app: Celery, settings: Settings
) -> None:
    items = [
        item(
            f"get {n}",
            "GET",
            "{{baseUrl}}/wait?n=" + str(n),
            tests=f'pm.test("n is {n}", () => '
            f'pm.expect(pm.request.url.query.get("n")).to.equal("{n}"));',
            # Out of the cookie jar: requests to one host that share cookies run in order.
            protocolProfileBehavior={"disableCookies": True},
        )
        for n in range(6)
    ]
    queue = settings.queue_for(settings.default_network)
    with serve(handler=Rendezvous) as url, in_process_worker(app, [queue], concurrency=8):
        report = run_and_wait(app, RunRequest(collection(*items), environment(url)))
    assert outcomes(report) == [(f"get {n}", [(f"n is {n}", True)]) for n in range(6)]
    assert report["status"] == "finished"
    assert Rendezvous.most_in_flight == 6, (
        f"at most {Rendezvous.most_in_flight} of 6 independent requests were in flight together"
    )
    assert all(e["worker"] for e in report["run"]["executions"])
    assert Services.of(app).store.list(report["collectionId"]).total == 1


def test_dependent_sequence_hands_state_to_the_next_step(
    app: Celery, settings: Settings, base_url: str
) -> None:
    login = item(
        "login",
        "POST",
        "{{baseUrl}}/post",
        tests='pm.environment.set("token", "t-" + pm.response.code);',
    )
    use = item(
        "use token",
        "GET",
        "{{baseUrl}}/headers",
        tests='pm.test("token sent", () => pm.expect(pm.response.json().headers["x-token"])'
        '.to.equal("t-200"));',
    )
    use["request"]["header"] = [{"key": "X-Token", "value": "{{token}}"}]
    other = item(
        "independent", "GET", "{{baseUrl}}/get", tests='pm.test("ok", () => pm.response.to.be.ok);'
    )
    queue = settings.queue_for(settings.default_network)
    with in_process_worker(app, [queue]):
        report = run_and_wait(app, RunRequest(collection(login, use, other), environment(base_url)))
    assert outcomes(report) == [
        ("login", []),
        ("use token", [("token sent", True)]),
        ("independent", [("ok", True)]),
    ]


def test_set_next_request_loop(app: Celery, settings: Settings, base_url: str) -> None:
    start = item("start", "GET", "{{baseUrl}}/get", tests='pm.collectionVariables.set("n", 0);')
    loop = item(
        "loop",
        "GET",
        "{{baseUrl}}/get?n={{n}}",
        tests="\n".join(
            [
                'const n = Number(pm.collectionVariables.get("n")) + 1;',
                'pm.collectionVariables.set("n", n);',
                'pm.test("round " + n, () => '
                "pm.expect(pm.response.json().args.n).to.equal(String(n - 1)));",
                'if (n < 3) { pm.execution.setNextRequest("loop"); }',
            ]
        ),
    )
    end = item("end", "GET", "{{baseUrl}}/get", tests='pm.test("end", () => {});')
    queue = settings.queue_for(settings.default_network)
    with in_process_worker(app, [queue]):
        report = run_and_wait(app, RunRequest(collection(start, loop, end), environment(base_url)))
    assert outcomes(report) == [
        ("start", []),
        ("loop", [("round 1", True)]),
        ("loop", [("round 2", True)]),
        ("loop", [("round 3", True)]),
        ("end", [("end", True)]),
    ]


def test_queue_without_consumer_is_reported_at_the_deadline(
    app: Celery, settings: Settings, base_url: str
) -> None:
    reachable = item("reachable", "GET", "{{baseUrl}}/get", tests='pm.test("ok", () => {});')
    stranded = item("stranded", "GET", "{{baseUrl}}/get", **{"x-pmrunner-network": "ghost"})
    queue = settings.queue_for(settings.default_network)
    services = Services.of(app)
    with in_process_worker(app, [queue]):
        run_id = start_run(
            app,
            RunRequest(collection(reachable, stranded), environment(base_url), deadline_seconds=3),
        )
        assert wait_for_report(services, run_id, 1.5) is None
        time.sleep(2)
        # The worker's own upkeep sweeps every second too: whichever comes first reports.
        assert sweep(services) in ([run_id], [])
        assert sweep(services) == []
        report = wait_for_report(services, run_id, 5)
    assert report is not None
    assert services.store.list(report["collectionId"]).total == 1
    executions = report["run"]["executions"]
    assert [e["item_name"] for e in executions] == ["reachable", "stranded"]
    error = executions[1]["errors"][0]
    assert error["name"] == "RunIncomplete"
    assert "no worker consumed net.ghost within 3 s" in error["message"]
    assert report["status"] == "failed"


def test_duplicate_delivery_runs_a_step_once(
    app: Celery, settings: Settings, base_url: str
) -> None:
    first = item("first", "POST", "{{baseUrl}}/post", tests='pm.environment.set("x", "1");')
    second = item(
        "second",
        "GET",
        "{{baseUrl}}/get?x={{x}}",
        tests='pm.test("x", () => pm.expect(pm.response.json().args.x).to.equal("1"));',
    )
    queue = settings.queue_for(settings.default_network)
    services = Services.of(app)
    with in_process_worker(app, [queue]):
        report = run_and_wait(app, RunRequest(collection(first, second), environment(base_url)))
        # The broker delivers the first step once more, as after a lost ack.
        app.send_task(
            "pmrunner.execute_request", (report["id"], "b0", 0, {"index": 0}), queue=queue
        )
        time.sleep(1.5)
    assert outcomes(report) == [("first", []), ("second", [("x", True)])]
    assert services.store.list(report["collectionId"]).total == 1
    assert len(report["run"]["executions"]) == 2


def test_killed_worker_is_reported_and_the_run_ends_once(
    app: Celery, settings: Settings, base_url: str, worker_processes: list[WorkerProcess]
) -> None:
    fast_network = f"fast{settings.default_network}"
    # Out of the cookie jar, so that "fast" does not wait for it.
    slow = item(
        "slow",
        "GET",
        "{{baseUrl}}/delay/20000",
        protocolProfileBehavior={"disableCookies": True},
    )
    fast = item(
        "fast",
        "GET",
        "{{baseUrl}}/get",
        tests='pm.test("ok", () => {});',
        # A network of this test's own: queues are named after networks, and a
        # test running at the same time elsewhere on this Redis must not take its steps.
        **{"x-pmrunner-network": fast_network},
    )
    doomed = WorkerProcess(settings, [settings.queue_for(settings.default_network)], "doomed")
    worker_processes.append(doomed)
    doomed.wait_ready(app)
    services = Services.of(app)
    with in_process_worker(app, [settings.queue_for(fast_network)]):
        run_id = start_run(
            app,
            RunRequest(
                collection(slow, fast),
                environment(base_url),
                deadline_seconds=6,
                options=RunOptions(timeouts=Timeouts(request=30000)),
            ),
        )
        wait_until(lambda: any(k.endswith(":started") for k in services.registry.progress(run_id)))
        time.sleep(0.5)
        doomed.kill()
        time.sleep(6)
        # The worker's own upkeep sweeps every second too: whichever comes first reports.
        assert sweep(services) in ([run_id], [])
        report = wait_for_report(services, run_id, 5)
    assert report is not None
    by_name = {e["item_name"]: e for e in report["run"]["executions"]}
    assert [a["passed"] for a in by_name["fast"]["assertions"]] == [True], by_name["fast"]
    message = by_name["slow"]["errors"][0]["message"]
    assert "doomed@" in message and "gave no result after sending it (GET)" in message
    assert services.store.list(report["collectionId"]).total == 1


def test_a_dispatching_process_exits_cleanly(settings: Settings, base_url: str) -> None:
    """Sending a run subscribes to no result channel, so exiting prints nothing."""
    script = (
        "from runtime.loading import VariableFile\n"
        "from tasks.dispatch import RunRequest, start_run\n"
        "from worker.app import create_app\n"
        "from worker.settings import Settings\n"
        "app = create_app(Settings.from_env())\n"
        f"collection = {collection(item('one', 'GET', base_url + '/get'))!r}\n"
        "start_run(app, RunRequest(collection, VariableFile('e', None, [])))\n"
        "assert app.backend.result_consumer._pubsub is None, 'subscribed to results'\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env={**os.environ, **settings.to_env()},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""


def test_waiting_on_a_celery_result_still_works(app: Celery, settings: Settings) -> None:
    """The result backend subscribes lazily, when something waits."""
    queue = settings.queue_for(settings.default_network)
    with in_process_worker(app, [queue]):
        result = app.send_task("pmrunner.finalize_run", ("no-such-run",), queue=queue)
        assert result.get(timeout=20) is None


def test_finalize_task_result_names_the_run_status_for_flower(
    app: Celery, settings: Settings, base_url: str
) -> None:
    failing = item(
        "fails",
        "GET",
        base_url + "/get",
        tests='pm.test("ok", () => {}); pm.test("is 404", () => pm.response.to.have.status(404));',
    )
    queue = settings.queue_for(settings.default_network)
    with in_process_worker(app, [queue]):
        report = run_and_wait(app, RunRequest(collection(failing), environment(base_url)))
        # The run's own finalize_run ran already; a second one answers as the first did.
        result = app.send_task("pmrunner.finalize_run", (report["id"],), queue=queue)
        outcome = result.get(timeout=20)
    assert report["status"] == "failed"
    assert result.state == "SUCCESS"
    assert outcome == {
        "run": report["id"],
        "status": "failed",
        "monitor": None,
        "collection": report["collectionName"],
        "assertions": 2,
        "assertionsFailed": 1,
    }


def test_secrets_stay_out_of_stored_reports(app: Celery, settings: Settings, base_url: str) -> None:
    token, key = "tok-5ecret-value", "key-5ecret-value"
    request = item(
        "with secrets",
        "GET",
        "{{baseUrl}}/headers?api_key={{apiKey}}",
        tests='pm.test("sent", () => pm.expect(pm.response.json().headers.authorization)'
        '.to.equal("Bearer " + pm.environment.get("token")));',
    )
    request["request"]["auth"] = {
        "type": "bearer",
        "bearer": [{"key": "token", "value": "{{token}}", "type": "string"}],
    }
    request["request"]["header"] = [{"key": "X-Api-Key", "value": "{{apiKey}}"}]
    queue = settings.queue_for(settings.default_network)
    with in_process_worker(app, [queue]):
        report = run_and_wait(
            app, RunRequest(collection(request), environment(base_url, token=token, apiKey=key))
        )
    stored = json.dumps(report)
    assert outcomes(report) == [("with secrets", [("sent", True)])]
    assert token not in stored and key not in stored
    sent = dict(report["run"]["executions"][0]["request"]["headers"])
    assert sent["Authorization"] == "Bearer ********"
    assert sent["X-Api-Key"] == "********"


def test_a_step_that_fails_inside_pmrunner_is_reported_with_what_it_stopped(
    app: Celery, settings: Settings, base_url: str
) -> None:
    first = item("first", "POST", "{{baseUrl}}/post")
    second = item("second", "GET", "{{baseUrl}}/get")
    services = Services.of(app)
    run_id = start_run(app, RunRequest(collection(first, second), environment(base_url)))
    ticket = services.registry.ticket(run_id)
    assert ticket is not None
    services.registry.redis.delete(services.registry.keys.collection(ticket.collection_digest))
    with in_process_worker(app, [settings.queue_for(settings.default_network)]):
        report = wait_for_report(services, run_id, 30)
    assert report is not None
    executions = report["run"]["executions"]
    assert [e["errors"][0]["kind"] for e in executions] == ["internal", "request"]
    assert "no longer cached" in executions[0]["errors"][0]["message"]
    assert executions[1]["item_name"] == "second"
    assert "failed inside pmrunner" in executions[1]["errors"][0]["message"]
    assert report["status"] == "failed"


def test_waiting_past_the_deadline_reports_without_a_sweeper(
    app: Celery, settings: Settings, base_url: str
) -> None:
    stranded = item("stranded", "GET", "{{baseUrl}}/get", **{"x-pmrunner-network": "nowhere"})
    services = Services.of(app)
    run_id = start_run(
        app, RunRequest(collection(stranded), environment(base_url), deadline_seconds=1)
    )
    started = time.monotonic()
    report = wait_for_report(services, run_id, 20)
    assert report is not None and time.monotonic() - started < 10
    error = report["run"]["executions"][0]["errors"][0]
    assert "no worker consumed net.nowhere" in error["message"]
