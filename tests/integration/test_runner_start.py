"""``pmrunner runner start`` as a real process: it schedules, runs and stops cleanly.

The runner is started as a subprocess (a Celery worker with its embedded
scheduler) against the test's Redis, key prefix and queues; its runs are read
back from the run store.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import redis
import requests
import trustme
from celery import Celery
from click.testing import CliRunner, Result

from pmrunner.cli import pmrunner
from tasks.context import Services
from tests.echo_server import EchoHandler, EchoServer, serve
from tests.fakes.fake_postman import FakePostman
from tests.integration.conftest import ROOT
from tests.integration.scheduler_helpers import health_collection, write_monitors
from tests.integration.terminal_helpers import kill_group
from tests.unit.cli_options_helpers import single_error_line
from worker.settings import Settings

pytestmark = pytest.mark.integration
JSON = dict[str, Any]
STOP_SECONDS = 20


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


@contextmanager
def https_echo(ca: trustme.CA) -> Iterator[str]:
    """The echo server behind TLS, with a certificate for 127.0.0.1 signed by ``ca``."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    server = EchoServer(("127.0.0.1", 0), EchoHandler)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"https://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


class Runner:
    """``pmrunner runner start ...`` in its own process group, output in a file."""

    def __init__(self, settings: Settings, args: list[str], log: Path, env: dict[str, str]):
        clean = {k: v for k, v in os.environ.items() if not k.startswith("PMRUNNER_")}
        self.log = log
        with log.open("wb") as output:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "pmrunner.cli", "runner", "start", *args],
                cwd=ROOT,
                env={
                    **clean,
                    "PMRUNNER_REDIS_URL": settings.redis_url,
                    "PMRUNNER_KEY_PREFIX": settings.key_prefix,
                    "PMRUNNER_DEFAULT_NETWORK": settings.default_network,
                    "PMRUNNER_DATA_DIR": str(settings.data_dir),
                    **env,
                },
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_for(self, check: Callable[[], bool], timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if check():
                return
            if self.process.poll() is not None:
                raise AssertionError(f"the runner exited early:\n{self.output()[-3000:]}")
            time.sleep(0.25)
        raise AssertionError(f"condition not met in {timeout} s:\n{self.output()[-3000:]}")

    def terminate(self) -> int:
        """SIGTERM, as a service manager sends it; the exit code."""
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(STOP_SECONDS)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"no exit within {STOP_SECONDS} s of SIGTERM") from None

    def kill(self) -> None:
        kill_group(self.process)

    def group_alive(self) -> bool:
        try:
            os.killpg(self.process.pid, 0)
        except ProcessLookupError:
            return False
        return True


API_KEY = "api-key-for-the-runner-test"


@pytest.fixture()
def runners(settings: Settings) -> Iterator[list[Runner]]:
    started: list[Runner] = []
    yield started
    for runner in started:
        runner.kill()
    client = redis.Redis.from_url(settings.redis_url)
    for key in client.scan_iter(f"*{settings.default_network}*"):  # the runner's queue
        client.delete(key)


def stored_runs(services: Services, collection_id: str) -> list[JSON]:
    return services.store.list(collection_id, limit=100).runs


def metrics_text(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:
        return str(answer.read().decode())


def test_monitors_file_runs_on_schedule_with_metrics_and_extra_ca(
    app: Celery, settings: Settings, tmp_path: Path, runners: list[Runner]
) -> None:
    ca = trustme.CA()
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    (tmp_path / "health.json").write_text(json.dumps(health_collection("every-second")))
    port, api_port = free_port(), free_port()
    services = Services.of(app)
    with https_echo(ca) as base_url:
        monitors = write_monitors(
            tmp_path,
            base_url,
            [
                {
                    "name": "every second",
                    "uid": "every-second",
                    "collection": "health.json",
                    "environment": "env.json",
                    "schedule": {"every": 1},
                }
            ],
        )
        runner = Runner(
            settings,
            [
                "--monitors-file",
                str(monitors),
                "--id",
                "test-runner",
                "--concurrency",
                "4",
                "--ssl-extra-ca-certs",
                str(ca_file),
                "--metrics",
                "--metrics-port",
                str(port),
            ],
            tmp_path / "runner.log",
            {"PMRUNNER_API_KEY": API_KEY, "PMRUNNER_API_PORT": str(api_port)},
        )
        runners.append(runner)
        runner.wait_for(lambda: len(stored_runs(services, "coll-every-second")) >= 2)
        metrics = metrics_text(port)
        api = f"http://127.0.0.1:{api_port}"
        listed = requests.get(
            f"{api}/collections/coll-every-second/runs", headers={"x-api-key": API_KEY}, timeout=10
        )
        ran = requests.post(
            f"{api}/monitors/every-second/run", headers={"x-api-key": API_KEY}, timeout=60
        )
        exit_code = runner.terminate()
    assert listed.status_code == 200 and listed.json()["meta"]["total"] >= 2
    assert ran.status_code == 200, ran.text
    assert ran.json()["run"]["info"]["status"] == "success"
    assert API_KEY not in runner.output()
    runs = stored_runs(services, "coll-every-second")
    assert [run["status"] for run in runs] == ["finished"] * len(runs), runs[0]
    assert all(run["monitor"]["uid"] == "every-second" for run in runs)
    assert "pmrunner_runs_finished_total{" in metrics
    assert "pmrunner_requests_total{network=" in metrics
    assert "pmrunner_monitor_slots_started_total" in metrics
    assert exit_code == 0, runner.output()[-3000:]
    assert not runner.group_alive(), "the embedded scheduler outlived the runner"


def test_postman_monitor_selected_by_uid(
    app: Celery, settings: Settings, tmp_path: Path, runners: list[Runner]
) -> None:
    services = Services.of(app)
    tag = settings.default_network  # unique per test, so the extra queues are too
    with serve() as base_url, FakePostman() as postman:
        environment = postman.add_environment(
            name="env", values=[{"key": "baseUrl", "value": base_url, "enabled": True}]
        )
        chosen = postman.add_monitor(
            "chosen",
            collection_uid=postman.add_collection(health_collection("chosen")),
            environment_uid=environment,
            cron="* * * * * *",
        )
        postman.add_monitor(
            "other",
            collection_uid=postman.add_collection(health_collection("other")),
            environment_uid=environment,
            cron="* * * * * *",
        )
        runner = Runner(
            settings,
            [
                *("--key", postman.api_key, "--monitor", chosen["uid"], "--id", "test-runner"),
                *("--queues", f"net.{tag}-a,{tag}-b"),
            ],
            tmp_path / "runner.log",
            {"PMRUNNER_POSTMAN_BASE_URL": postman.url},
        )
        runners.append(runner)
        runner.wait_for(lambda: len(stored_runs(services, "coll-chosen")) >= 2)
        exit_code = runner.terminate()
        keys_sent = {request.headers.get("x-api-key") for request in postman.requests}
    assert exit_code == 0, runner.output()[-3000:]
    assert keys_sent == {postman.api_key}
    assert stored_runs(services, "coll-other") == []
    runs = stored_runs(services, "coll-chosen")
    assert {run["monitor"]["uid"] for run in runs} == {chosen["uid"]}
    assert postman.api_key not in runner.output()
    banner = runner.output()
    assert all(f"net.{name}" in banner for name in (tag, f"{tag}-a", f"{tag}-b")), banner[:2000]


def start(monkeypatch: pytest.MonkeyPatch, *args: str) -> Result:
    for name in [name for name in os.environ if name.startswith("PMRUNNER_")]:
        monkeypatch.delenv(name)
    return CliRunner().invoke(pmrunner, ["runner", "start", *args], catch_exceptions=False)


def test_nothing_to_run_is_one_error_line(monkeypatch: pytest.MonkeyPatch) -> None:
    line = single_error_line(start(monkeypatch, "--id", "r1"))
    assert "--key" in line and "--monitors-file" in line


def test_key_without_selection_is_one_error_line(monkeypatch: pytest.MonkeyPatch) -> None:
    result = start(monkeypatch, "--key", "PMAK-very-secret-key")
    line = single_error_line(result)
    assert "needs a selection" in line and "--monitor" in line and "--id" in line
    assert "PMAK-very-secret-key" not in result.output


def test_missing_monitors_file_is_one_error_line(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    line = single_error_line(start(monkeypatch, "--monitors-file", str(tmp_path / "none.yaml")))
    assert "--monitors-file" in line and "none.yaml" in line
