"""PMRUNNER_METRICS_HOST: the address the metrics server of a worker, beat or runner listens on."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from pmrunner.cli.console import served_lines
from tasks.presence import metrics_address
from worker.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
# A process serving metrics as a worker, beat or ``pmrunner runner start`` does.
SERVING = """
import sys
from tasks.presence import serve_metrics
from worker.settings import Settings
serve_metrics(Settings.from_env())
print("serving", flush=True)
sys.stdin.read()
"""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def answers(host: str, port: int) -> bool:
    """Whether something accepts a TCP connection on ``host:port``."""
    try:
        with socket.create_connection((host, port), timeout=2):
            return True
    except OSError:
        return False


@pytest.fixture
def serving(request: pytest.FixtureRequest) -> Iterator[int]:
    """A process serving metrics with ``request.param`` as PMRUNNER_METRICS_HOST; its port."""
    port = free_port()
    env = {**os.environ, "PMRUNNER_METRICS_PORT": str(port), "PYTHONPATH": str(ROOT)}
    env.pop("PMRUNNER_METRICS_HOST", None)
    if request.param is not None:
        env["PMRUNNER_METRICS_HOST"] = request.param
    env["PMRUNNER_REDIS_URL"] = "redis://127.0.0.1:6379/12"
    process = subprocess.Popen(
        [sys.executable, "-c", SERVING], env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    try:
        assert process.stdout is not None
        assert process.stdout.readline() == b"serving\n"
        yield port
    finally:
        process.kill()
        process.wait()


@pytest.mark.parametrize("serving", ["127.0.0.1"], indirect=True)
def test_metrics_listen_only_on_the_host_given(serving: int) -> None:
    assert answers("127.0.0.1", serving)
    # Another loopback address reaches a server on every interface, not this one.
    assert not answers("127.0.0.2", serving)


@pytest.mark.parametrize("serving", [None], indirect=True)
def test_by_default_metrics_listen_on_every_interface(serving: int) -> None:
    assert answers("127.0.0.1", serving)
    assert answers("127.0.0.2", serving)


def test_the_start_lines_name_the_address_metrics_are_served_on() -> None:
    settings = Settings(metrics_port=9808, metrics_host="127.0.0.1")
    assert "  metrics  http://127.0.0.1:9808/metrics" in served_lines(settings, "w@h", ["net.a"])
    assert Settings.from_env({"PMRUNNER_METRICS_HOST": "::1"}).metrics_host == "::1"
    assert metrics_address(Settings(metrics_port=9808, metrics_host="::")) == "[::]:9808"
    assert Settings().metrics_host == "0.0.0.0"
