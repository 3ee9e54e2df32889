"""What ``pmrunner runner start`` and ``pmrunner up`` show at a terminal, and how they stop.

The runner runs the bundled example monitors against the demo API on
loopback, on the test Redis with its own key prefix and queue.
"""

from __future__ import annotations

import re
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from pmrunner.cli.demo import demo_api, examples_folder
from store import Keys, RunStore
from tests.integration.conftest import ROOT
from tests.integration.terminal_helpers import Terminal, clean_env
from tests.integration.test_up import free_port
from worker.settings import Settings

pytestmark = pytest.mark.integration
RUN_LINE = re.compile(
    r"^\d\d:\d\d:\d\d .+: (finished|failed), assertions \d+ passed / \d+ failed,"
    r" \d+ requests, \d+ ms"
)
STOP_LINE = "stopping (Ctrl-C): requests in progress finish first"
CELERY_NOISE = re.compile(r"Task pmrunner\.|Sending due task|mingle|beat: Starting|\[tasks\]")


@pytest.fixture()
def demo_url() -> Iterator[str]:
    with demo_api() as server:
        yield server.url


def runner_env(settings: Settings, demo_url: str, api_port: int) -> dict[str, str]:
    env = clean_env(settings.data_dir)
    env.update(
        PMRUNNER_REDIS_URL=settings.redis_url,
        PMRUNNER_KEY_PREFIX=settings.key_prefix,
        PMRUNNER_DEFAULT_NETWORK=settings.default_network,
        PMRUNNER_API_KEY="terminal-test-key",
        PMRUNNER_API_PORT=str(api_port),
        PMRUNNER_VAR_baseUrl=demo_url,
    )
    return env


def stored_workers(settings: Settings) -> set[str]:
    """The worker names the stored runs of the demo shop collection name."""
    store = RunStore(redis.Redis.from_url(settings.redis_url), Keys(settings.key_prefix))
    workers = set()
    for run in store.list("demo-shop", limit=10).runs:
        report = store.get(run["id"]) or {}
        workers |= {e.get("worker") for e in report["run"]["executions"]}
    return workers


def test_runner_start_says_what_it_serves_then_one_line_per_run(
    settings: Settings, demo_url: str, tmp_path: Path
) -> None:
    api_port, metrics_port = free_port(), free_port()
    argv = [sys.executable, "-m", "pmrunner.cli", "runner", "start", "--concurrency", "4"]
    argv += ["--monitors-file", str(examples_folder() / "monitors.yaml")]
    argv += ["--metrics", "--metrics-port", str(metrics_port)]
    env = runner_env(settings, demo_url, api_port)
    terminal = Terminal(argv, env, tmp_path / "runner.log", ROOT)
    try:
        first_run = terminal.wait_for_line(RUN_LINE.pattern, 30)
        terminal.wait_for_line(r"Payments: failed, assertions 2 passed / 1 failed", 15)
        terminal.wait_for_line(r"Shop health: finished, assertions 7 passed / 0 failed", 15)
        time.sleep(6)  # a few more slots: nothing but run lines may appear
        output = terminal.output()
    finally:
        code, seconds = terminal.interrupt()
    # After Ctrl-C: runs that were finishing, then pmrunner's one stop line, nothing of Celery's.
    stopping = [line for line in terminal.output()[len(output) :].splitlines() if line.strip()]
    assert [line for line in stopping if not RUN_LINE.match(line)] == [STOP_LINE], stopping
    host = socket.gethostname()
    assert f"pmrunner worker pmrunner@{host}, queues net.{settings.default_network}" in output
    assert "%h" not in output
    assert f"API      http://127.0.0.1:{api_port}" in output
    assert f"metrics  http://0.0.0.0:{metrics_port}/metrics" in output
    assert "3 monitors loaded:" in output
    assert re.search(r"Shop health \(shop-health\): every 5s, next \d\d:\d\d:\d\d UTC", output)
    assert "terminal-test-key" not in output
    after_first = output.split(first_run, 1)[1].splitlines()[1:]
    runs = [line for line in after_first if RUN_LINE.match(line)]
    others = [line for line in after_first if not RUN_LINE.match(line)]
    assert len(runs) >= 3, after_first
    # Besides run lines, at most the one warning that the payments monitor started failing.
    assert len(others) <= 1 and all("WARNING" in line for line in others), others
    assert not CELERY_NOISE.search(output), output
    assert stored_workers(settings) == {f"pmrunner@{host}"}
    assert code == 0, output[-2000:]
    assert seconds < 3, f"Ctrl-C took {seconds:.1f} s"


@pytest.mark.parametrize("command", [["up"], ["runner", "start"]])
@pytest.mark.parametrize(
    ("variable", "option", "message"),
    [
        (None, "bad.yaml", "bad.yaml: monitor 'x': unknown field 'colection'"),
        ("PMRUNNER_RUN_DEADLINE=soon", None, "PMRUNNER_RUN_DEADLINE='soon' is not a valid float"),
    ],
)
def test_a_configuration_error_exits_at_once_with_one_line(
    tmp_path: Path, command: list[str], variable: str | None, option: str | None, message: str
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("monitors:\n  - name: x\n    colection: a.json\n    schedule: {every: 5s}\n")
    env = clean_env(tmp_path / "data")
    if variable:
        name, _, value = variable.partition("=")
        env[name] = value
    monitors = str(bad if option else examples_folder() / "monitors.yaml")
    argv = [sys.executable, "-m", "pmrunner.cli", *command, "--monitors-file", monitors]
    terminal = Terminal(argv, env, tmp_path / "out.log", ROOT)
    try:
        code = terminal.process.wait(10)
    finally:
        terminal.kill()
    seconds = time.monotonic() - terminal.started
    output = terminal.output()
    assert code == 1, output
    assert message in output
    assert "Traceback" not in output
    assert seconds < 5, f"exited after {seconds:.1f} s"
