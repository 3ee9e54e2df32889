"""The scheduler on real Redis and real workers.

Due slots start once, changes to sources take effect, Postman may fail.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from celery import Celery

import tasks.schedule  # noqa: F401 - registers the scheduling tasks
from scheduler.local_source import LocalMonitorSource
from scheduler.postman import PostmanClient
from scheduler.postman_source import MonitorSelection, PostmanMonitorSource
from tasks.context import Services
from tasks.finalize import wait_for_report
from tasks.monitors import source_for
from tasks.schedule import dispatch
from tests.echo_server import serve
from tests.fakes.fake_postman import FakePostman
from tests.integration.conftest import ROOT, WorkerProcess, in_process_worker, wait_until
from worker.app import create_app
from worker.settings import Settings

pytestmark = pytest.mark.integration
JSON = dict[str, Any]


def health_collection(name: str, status: int = 200) -> JSON:
    return {
        "info": {"_postman_id": f"coll-{name}", "name": name},
        "item": [
            {
                "name": "health",
                "request": {"method": "GET", "url": "{{baseUrl}}/status/" + str(status)},
                "event": [
                    {
                        "listen": "test",
                        "script": {
                            "exec": ['pm.test("is 200", () => pm.response.to.have.status(200));']
                        },
                    }
                ],
            }
        ],
    }


@pytest.fixture()
def base_url() -> Iterator[str]:
    with serve() as url:
        yield url


def write_monitors(folder: Path, base_url: str, monitors: list[JSON]) -> Path:
    (folder / "env.json").write_text(
        json.dumps({"name": "env", "values": [{"key": "baseUrl", "value": base_url}]})
    )
    lines = ["monitors:"]
    for monitor in monitors:
        lines.append(f"  - {json.dumps(monitor)}")
    path = folder / "monitors.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def runs_of(services: Services, collection_id: str) -> list[JSON]:
    page = services.store.list(collection_id, limit=100)
    return page.runs


def test_two_beats_start_every_slot_exactly_once(
    app: Celery,
    settings: Settings,
    base_url: str,
    tmp_path: Path,
    worker_processes: list[WorkerProcess],
) -> None:
    (tmp_path / "health.json").write_text(json.dumps(health_collection("beats")))
    monitors = write_monitors(
        tmp_path,
        base_url,
        [
            {
                "name": "beats",
                "uid": "beats",
                "collection": "health.json",
                "environment": "env.json",
                "schedule": {"every": 1},
            }
        ],
    )
    env = {"PMRUNNER_MONITORS_FILE": str(monitors), "PMRUNNER_DISPATCH_INTERVAL": "0.3"}
    worker = WorkerProcess(
        settings,
        [settings.queue_for(settings.default_network)],
        "beatwork",
        concurrency=8,
        extra_env=env,
    )
    worker_processes.append(worker)
    worker.wait_ready(app)
    beats = [_beat(settings, tmp_path / f"beat-{n}", env) for n in range(2)]
    services = Services.of(app)
    try:
        deadline = time.monotonic() + 90
        while len(runs_of(services, "coll-beats")) < 22 and time.monotonic() < deadline:
            time.sleep(0.5)
    finally:
        for beat in beats:
            beat.terminate()
            beat.wait(20)
    time.sleep(2)
    runs = runs_of(services, "coll-beats")
    ran = [run["monitor"]["slot"] for run in runs]
    assert len(ran) >= 20, f"only {len(ran)} runs"
    assert len(ran) == len(set(ran)), "a slot ran twice"
    skipped_key = f"{settings.key_prefix}monitor:beats:skipped"
    skipped = [
        datetime.fromisoformat(json.loads(raw)["slot"]).strftime("%Y%m%dT%H%M%SZ")
        for raw in services.registry.redis.lrange(skipped_key, 0, -1)
    ]
    assert not set(ran) & set(skipped), "a slot both ran and was skipped"
    # Every slot in the window either ran once or was recorded as skipped
    # (a busy machine may check too late for a slot; it is not run late).
    seconds = sorted(datetime.strptime(s, "%Y%m%dT%H%M%SZ") for s in ran + skipped)
    gaps = {(b - a).total_seconds() for a, b in itertools.pairwise(seconds)}
    assert gaps == {1.0}, f"slots missing from both runs and skips: gaps {sorted(gaps)}"
    assert len(skipped) <= len(ran) // 4, f"{len(skipped)} of {len(ran) + len(skipped)} skipped"


def _beat(settings: Settings, schedule: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "worker",
            "beat",
            "-s",
            str(schedule),
            "-l",
            "WARNING",
            "--max-interval",
            "1",
        ],
        cwd=ROOT,
        env={**os.environ, **settings.to_env(), **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


@pytest.fixture()
def postman() -> Iterator[FakePostman]:
    with FakePostman() as fake:
        yield fake


def postman_source(postman: FakePostman) -> PostmanMonitorSource:
    client = PostmanClient(postman.api_key, base_url=postman.url, max_retries=0, timeout=2)
    return PostmanMonitorSource(client, MonitorSelection(workspace="ws-default"))


def minute(n: int, second: int = 5) -> datetime:
    return datetime(2026, 11, 22, 12, 0, tzinfo=UTC) + timedelta(minutes=n, seconds=second)


def started_monitors(services: Services, run_ids: list[str]) -> list[str]:
    names = []
    for run_id in run_ids:
        report = wait_for_report(services, run_id, 30)
        assert report is not None
        names.append(report["monitor"]["name"])
    return sorted(names)


def test_postman_changes_take_effect_within_one_poll(
    app: Celery, settings: Settings, base_url: str, postman: FakePostman
) -> None:
    environment = postman.add_environment(
        name="env", values=[{"key": "baseUrl", "value": base_url, "enabled": True}]
    )
    first_collection = postman.add_collection(health_collection("first"))
    first = postman.add_monitor(
        "first", collection_uid=first_collection, environment_uid=environment, cron="* * * * *"
    )
    source = postman_source(postman)
    services = Services.of(app)
    with in_process_worker(app, [settings.queue_for(settings.default_network)]):
        assert dispatch(services, source, minute(0, 50)) == []
        assert started_monitors(services, dispatch(services, source, minute(1))) == ["first"]
        second_collection = postman.add_collection(health_collection("second"))
        second = postman.add_monitor(
            "second",
            collection_uid=second_collection,
            environment_uid=environment,
            cron="* * * * *",
        )
        assert started_monitors(services, dispatch(services, source, minute(2))) == [
            "first",
            "second",
        ]
        postman.deactivate_monitor(first["uid"])
        assert started_monitors(services, dispatch(services, source, minute(3))) == ["second"]
        postman.edit_monitor(second["uid"], schedule={"cron": "0 * * * *", "timezone": "UTC"})
        assert dispatch(services, source, minute(4)) == []
        assert dispatch(services, source, minute(4, 6)) == []  # a second check finds nothing new


def test_postman_down_keeps_last_known_monitors_running(
    app: Celery, settings: Settings, base_url: str, postman: FakePostman
) -> None:
    environment = postman.add_environment(
        name="env", values=[{"key": "baseUrl", "value": base_url, "enabled": True}]
    )
    collection = postman.add_collection(health_collection("steady"))
    postman.add_monitor(
        "steady", collection_uid=collection, environment_uid=environment, cron="* * * * *"
    )
    source = postman_source(postman)
    services = Services.of(app)
    with in_process_worker(app, [settings.queue_for(settings.default_network)]):
        assert started_monitors(services, dispatch(services, source, minute(1))) == ["steady"]
        assert source.healthy
        postman.go_down()
        for n in (2, 3, 4):
            run_ids = dispatch(services, source, minute(n))
            assert started_monitors(services, run_ids) == ["steady"]
            assert not source.healthy and source.last_error
        postman.come_up()
        assert started_monitors(services, dispatch(services, source, minute(5))) == ["steady"]
        assert source.healthy
    statuses = [run["status"] for run in runs_of(services, "coll-steady")]
    assert statuses == ["finished"] * 5


class Receiver:
    """A loopback webhook receiver that keeps what it was sent."""

    def __init__(self) -> None:
        self.received: list[JSON] = []
        received = self.received

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                received.append(json.loads(self.rfile.read(length)))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.mark.usefixtures("app")  # cleans the test's keys afterwards
def test_retries_failure_notice_and_recovery(
    settings: Settings, base_url: str, tmp_path: Path
) -> None:
    receiver = Receiver()
    collection_file = tmp_path / "flaky.json"
    collection_file.write_text(json.dumps(health_collection("flaky", status=500)))
    monitors = write_monitors(
        tmp_path,
        base_url,
        [
            {
                "name": "flaky",
                "uid": "flaky",
                "collection": "flaky.json",
                "environment": "env.json",
                "schedule": {"cron": "* * * * *"},
                "retry": {"attempts": 1},
                "notificationLimit": 1,
                "webhooks": [receiver.url],
            }
        ],
    )
    settings = dataclasses.replace(settings, monitors_file=monitors)
    app = create_app(settings)
    source = source_for(settings)
    assert isinstance(source, LocalMonitorSource)
    services = Services.of(app)
    try:
        with in_process_worker(app, [settings.queue_for(settings.default_network)]):
            dispatch(services, source, minute(1))
            wait_until(lambda: any(m.get("event") == "monitor.failing" for m in receiver.received))
            collection_file.write_text(json.dumps(health_collection("flaky", status=200)))
            dispatch(services, source, minute(2))
            wait_until(
                lambda: any(m.get("event") == "monitor.recovered" for m in receiver.received)
            )
    finally:
        receiver.close()
    runs = runs_of(services, "coll-flaky")
    assert [(r["status"], r["monitor"]["attempt"]) for r in reversed(runs)] == [
        ("failed", 1),
        ("failed", 2),
        ("finished", 1),
    ]
    reports = [m for m in receiver.received if "run" in m]
    assert len(reports) == 3 and reports[0]["run"]["info"]["status"] == "failed"
    notices = [m["event"] for m in receiver.received if "event" in m]
    assert notices == ["monitor.failing", "monitor.recovered"]
