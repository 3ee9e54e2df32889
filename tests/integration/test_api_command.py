"""The ``pmrunner api`` command: it serves on loopback, never logs the key, needs one."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from tests.integration.api_helpers import KEY, free_port
from tests.integration.conftest import ROOT, wait_until
from worker.settings import Settings

pytestmark = pytest.mark.integration


def test_pmrunner_api_command_serves_and_never_logs_the_key(
    settings: Settings, tmp_path: Path
) -> None:
    port = free_port()
    env = {
        **os.environ,
        **dataclasses.replace(settings, api_key=KEY).to_env(),
        "PMRUNNER_DATA_DIR": str(tmp_path),
    }
    command = [sys.executable, "-m", "pmrunner.cli", "api", "--host", "127.0.0.1"]
    process = subprocess.Popen(
        [*command, "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:

        def answers() -> bool:
            try:
                return requests.get(url + "/health", timeout=2).status_code == 200
            except requests.ConnectionError:
                assert process.poll() is None, "pmrunner api exited"
                return False

        wait_until(answers, timeout=30, what="pmrunner api answered")
        no_source = requests.post(url + "/monitors/x/run", params={"apikey": KEY}, timeout=10)
        assert no_source.status_code == 404
    finally:
        process.terminate()
        output, _ = process.communicate(timeout=20)
    log = output.decode()
    assert "POST /monitors/x/run 404" in log
    assert KEY not in log


def test_pmrunner_api_command_refuses_to_start_without_a_key(settings: Settings) -> None:
    env = {**os.environ, **settings.to_env(), "PMRUNNER_API_KEY": ""}
    finished = subprocess.run(
        [sys.executable, "-m", "pmrunner.cli", "api", "--port", "0"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        timeout=60,
    )
    assert finished.returncode == 1
    assert finished.stderr.decode().startswith("error: PMRUNNER_API_KEY is not set")
    assert "--insecure-no-auth" in finished.stderr.decode()
