"""``pmrunner run --distributed`` says what it waits for, and cleans up when it stops waiting.

The command runs as a user starts it (a subprocess, default settings but the
broker), against a real Redis; workers are real ``celery -A worker worker``
processes. With no worker, it says so a few seconds after the start; when
it gives up, its waiting messages are gone from the queue and the run is
reported with the requests that did not run. With a worker, it prints one
line per finished request.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import redis
from celery import Celery

from store.keys import Keys
from store.runs import RunStore
from tests.echo_server import serve
from tests.integration.conftest import ROOT, WorkerProcess, wait_until
from worker.settings import Settings

pytestmark = pytest.mark.integration
REQUESTS = 3
NOTICE = "waiting: no pmrunner worker is alive consumes"


@pytest.fixture()
def base_url() -> Iterator[str]:
    with serve() as url:
        yield url


@pytest.fixture()
def collection_file(tmp_path: Path, base_url: str) -> Path:
    items = [
        {
            "name": f"get {number}",
            "request": {"method": "GET", "url": f"{base_url}/get?n={number}"},
            "event": [
                {
                    "listen": "test",
                    "script": {"exec": ['pm.test("200", () => pm.response.to.have.status(200));']},
                }
            ],
        }
        for number in range(REQUESTS)
    ]
    path = tmp_path / "three.postman_collection.json"
    path.write_text(json.dumps({"info": {"name": "three"}, "item": items}))
    return path


@dataclass
class Command:
    """``pmrunner run --distributed`` in a subprocess, its stderr lines timed as they come."""

    process: subprocess.Popen[str]
    started: float
    lines: list[tuple[float, str]] = field(default_factory=list)

    def read(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.lines.append((time.monotonic() - self.started, line.rstrip("\n")))

    def first(self, text: str) -> float | None:
        return next((at for at, line in self.lines if text in line), None)

    def text(self) -> str:
        return "\n".join(line for _, line in self.lines)


def start_command(
    settings: Settings, collection: Path, *extra: str
) -> tuple[Command, threading.Thread]:
    env = {
        "PATH": os.environ["PATH"],
        "PMRUNNER_REDIS_URL": settings.redis_url,
        "PMRUNNER_KEY_PREFIX": settings.key_prefix,
        "PMRUNNER_DEFAULT_NETWORK": settings.default_network,
        "PMRUNNER_DATA_DIR": str(settings.data_dir),  # its sealing key, as the workers'
    }
    argv = [sys.executable, "-m", "pmrunner.cli", "run", str(collection), "--distributed"]
    process = subprocess.Popen(
        [*argv, "-r", "cli", "--no-color", *extra],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    command = Command(process, time.monotonic())
    reader = threading.Thread(target=command.read, daemon=True)
    reader.start()
    return command, reader


def run_id_of(text: str) -> str:
    marker = "run "
    start = text.index(marker) + len(marker)
    return text[start : start + 32]


def test_no_worker_is_said_within_seconds_and_giving_up_removes_the_queued_requests(
    settings: Settings, collection_file: Path
) -> None:
    queue = settings.queue_for(settings.default_network)
    client = redis.Redis.from_url(settings.redis_url)
    command, reader = start_command(settings, collection_file, "--wait", "9")
    try:
        wait_until(lambda: client.llen(queue) > 0, timeout=15, what="requests queued")
        queued = client.llen(queue)  # one per branch: requests to one host form a sequence
        assert command.process.wait(30) == 1
        reader.join(10)
    finally:
        command.process.kill()
    said = command.first(NOTICE)
    assert said is not None, command.text()
    assert 4 <= said <= 8, command.lines
    assert f"-Q {queue}" in command.text()
    error = command.lines[-1][1]
    assert error.startswith("error: run ") and "has no report after 9 s" in error, error
    assert f"its {queued} waiting message" in error

    # Nothing of the run waits in the queue; its report says what did not run.
    assert client.llen(queue) == 0
    report = RunStore(client, Keys(settings.key_prefix)).get(run_id_of(error))
    assert report is not None and report["status"] == "failed"
    executions = report["run"]["executions"]
    assert len(executions) == REQUESTS
    for execution in executions:
        assert execution["errors"][0]["name"] == "RunIncomplete"
        assert f"no worker consumed {queue}" in execution["errors"][0]["message"]


def test_a_worker_that_comes_later_is_noticed_and_each_request_is_shown(
    app: Celery,
    settings: Settings,
    collection_file: Path,
    worker_processes: list[WorkerProcess],
) -> None:
    queue = settings.queue_for(settings.default_network)
    command, reader = start_command(settings, collection_file, "--wait", "120")
    try:
        wait_until(lambda: command.first(NOTICE) is not None, timeout=15, what="no-worker notice")
        worker = WorkerProcess(settings, [queue], "late")
        worker_processes.append(worker)
        try:
            exit_code = command.process.wait(60)
        except subprocess.TimeoutExpired:
            pytest.fail(f"no report: {command.text()}\nworker: {worker.log()}")
        assert exit_code == 0, command.text()
        reader.join(10)
    finally:
        command.process.kill()
    stdout = command.process.stdout.read() if command.process.stdout else ""
    text = command.text()
    assert f"a worker consumes {queue} now" in text
    progress = [line for _, line in command.lines if line.startswith("  [")]
    assert len(progress) == REQUESTS, text
    for number, line in enumerate(progress, start=1):
        assert line.startswith(f"  [{number}] get ")
        assert ": GET 200 OK, " in line and " ms (" in line and "late@" in line, line
    assert "get 0" in stdout and "200 OK" in stdout  # the cli report, on stdout


def test_ctrl_c_ends_the_run_and_removes_its_queued_requests(
    settings: Settings, collection_file: Path
) -> None:
    queue = settings.queue_for(settings.default_network)
    client = redis.Redis.from_url(settings.redis_url)
    command, reader = start_command(settings, collection_file, "--wait", "120")
    try:
        wait_until(lambda: client.llen(queue) > 0, timeout=15, what="requests queued")
        run_id = _queued_run(client, queue)
        command.process.send_signal(signal.SIGINT)
        assert command.process.wait(30) != 0
        reader.join(10)
    finally:
        command.process.kill()
    assert client.llen(queue) == 0
    report = RunStore(client, Keys(settings.key_prefix)).get(run_id)
    assert report is not None and report["status"] == "failed", command.text()


def _queued_run(client: redis.Redis, queue: str) -> str:
    """The run id a waiting step message carries (its first task argument)."""
    raw = client.lindex(queue, -1)
    assert isinstance(raw, bytes)
    message = json.loads(raw)
    body = json.loads(base64.b64decode(message["body"]))
    return str(body[0][0])


def test_giving_up_names_only_the_queue_no_live_worker_consumes(
    app: Celery,
    settings: Settings,
    collection_file: Path,
    worker_processes: list[WorkerProcess],
) -> None:
    default_queue = settings.queue_for(settings.default_network)
    worker_processes.append(WorkerProcess(settings, [default_queue], "default"))
    pinned = json.loads(collection_file.read_text())
    pinned["x-pmrunner-network"] = "nobody"
    collection_file.write_text(json.dumps(pinned))
    command, reader = start_command(settings, collection_file, "--wait", "9")
    try:
        assert command.process.wait(40) == 1
        reader.join(10)
    finally:
        command.process.kill()
    error = command.lines[-1][1]
    assert "has no report after 9 s" in error, command.text()
    assert "-Q net.nobody)" in error and default_queue not in error, error
