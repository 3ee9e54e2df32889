"""The scheduler on real Redis and real workers.

Due slots start once; edits in Postman take effect at the next poll; failed
runs are retried and notified.
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
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from celery import Celery

from scheduler.local_source import LocalMonitorSource
from tasks.context import Services
from tasks.monitors import source_for, start_monitor_run
from tests.fakes.fake_postman import FakePostman
from tests.integration.conftest import ROOT, WorkerProcess, in_process_worker, wait_until
from tests.integration.scheduler_helpers import (
    base_url,
    health_collection,
    postman_scheduler,
    runs_of,
    write_monitors,
)
from worker.app import create_app
from worker.settings import Settings

__all__ = ["base_url"]  # a fixture
pytestmark = pytest.mark.integration
JSON = dict[str, Any]


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
    env = {"PMRUNNER_MONITORS_FILE": str(monitors)}
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


def slots_after(services: Services, collection_id: str, moment: float) -> list[str]:
    """Slots of the collection's runs that came after ``moment`` (Unix time)."""
    return [
        run["monitor"]["slot"]
        for run in runs_of(services, collection_id)
        if datetime.strptime(run["monitor"]["slot"], "%Y%m%dT%H%M%SZ")
        .replace(tzinfo=UTC)
        .timestamp()
        > moment
    ]


def test_postman_edits_take_effect_at_the_next_poll(
    settings: Settings, base_url: str, tmp_path: Path
) -> None:
    with FakePostman() as postman:
        environment = postman.add_environment(
            name="env", values=[{"key": "baseUrl", "value": base_url, "enabled": True}]
        )

        def every_second(name: str) -> JSON:
            collection = postman.add_collection(health_collection(name))
            return postman.add_monitor(
                name, collection_uid=collection, environment_uid=environment, cron="* * * * * *"
            )

        paused, deleted, edited = (
            every_second("paused"),
            every_second("deleted"),
            every_second("edited"),
        )
        app, scheduler = postman_scheduler(settings, postman)
        services = Services.of(app)
        assert scheduler.poller.poll_once()
        with in_process_worker(app, [settings.queue_for(settings.default_network)]):
            scheduler.start()
            try:
                wait_until(
                    lambda: all(
                        runs_of(services, f"coll-{n}") for n in ("paused", "deleted", "edited")
                    )
                )
                postman.deactivate_monitor(paused["uid"])
                postman.remove_monitor(deleted["uid"])
                postman.edit_monitor(
                    edited["uid"], schedule={"cron": "0 0 1 1 *", "timezone": "UTC"}
                )
                added = every_second("added")
                assert scheduler.poller.poll_once()
                polled = time.time()
                wait_until(lambda: runs_of(services, "coll-added"))
                time.sleep(3)
            finally:
                scheduler.stop()
        assert added["uid"]
    for name in ("paused", "deleted", "edited"):
        assert slots_after(services, f"coll-{name}", polled) == [], name


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
    monitor = source.monitors()[0]
    try:
        with in_process_worker(app, [settings.queue_for(settings.default_network)]):
            start_monitor_run(app, services, source, monitor, slot="one")
            wait_until(lambda: any(m.get("event") == "monitor.failing" for m in receiver.received))
            collection_file.write_text(json.dumps(health_collection("flaky", status=200)))
            start_monitor_run(app, services, source, monitor, slot="two")
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


@pytest.mark.parametrize(
    ("limit", "expected"), [(0, []), (2, ["monitor.failing", "monitor.recovered"])]
)
def test_notices_follow_the_notification_limit(
    app: Celery, monkeypatch: pytest.MonkeyPatch, limit: int, expected: list[str]
) -> None:
    """Failure notices after ``limit`` failed runs in a row; a limit of 0 sends none at all."""
    import tasks.monitors as monitors_module
    from scheduler.monitors import Monitor
    from scheduler.schedule import Schedule

    sent: list[str] = []
    monkeypatch.setattr(
        monitors_module, "_send_notice", lambda _s, _m, _r, event, _n: sent.append(event)
    )
    monitor = Monitor(
        uid=f"notices-{limit}",
        name="notices",
        schedule=Schedule.every(60),
        source="local",
        collection="c.json",
        environment=None,
        notification_limit=limit,
    )
    services = Services.of(app)
    for failed in (True, True, True, False, False):
        monitors_module._notify(services, monitor, {"id": "run"}, failed)
    assert sent == expected
