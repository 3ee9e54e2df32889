"""``pmrunner run --distributed`` on a real Redis with a real in-process worker.

Every self-checking collection of tests/collections/ gives the same
assertion names and outcomes distributed as locally, and as newman.

The CLI finds the broker through ``PMRUNNER_*`` variables, as a user's shell
would; it reports a distributed run as it reports a local one.
"""

from __future__ import annotations

import json
import re
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from celery import Celery
from click.testing import CliRunner, Result

from pmrunner.cli import pmrunner
from tests.collections.outcomes import MANIFEST, expected, outcomes, run_arguments
from tests.echo_server import serve
from tests.integration.conftest import in_process_worker
from tests.unit.cli_options_helpers import single_error_line
from worker.settings import Settings

pytestmark = pytest.mark.integration
STRUCTURE = re.compile(r"^\s*(✓|✗|→|↳|❏|\d+\.)")  # names, folders and assertions


@pytest.fixture()
def base_url() -> Iterator[str]:
    with serve() as url:
        yield url


@pytest.fixture()
def broker_env(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    """Point the CLI at the test's Redis, key prefix, queues and key; drop its queue afterwards."""
    monkeypatch.setenv("PMRUNNER_REDIS_URL", settings.redis_url)
    monkeypatch.setenv("PMRUNNER_DATA_DIR", str(settings.data_dir))  # the workers' key file
    monkeypatch.setenv("PMRUNNER_KEY_PREFIX", settings.key_prefix)
    monkeypatch.setenv("PMRUNNER_DEFAULT_NETWORK", settings.default_network)
    monkeypatch.setenv("PMRUNNER_RUN_DEADLINE", str(settings.run_deadline))
    yield settings
    client = redis.Redis.from_url(settings.redis_url)
    for key in client.scan_iter(f"*{settings.default_network}*"):  # messages nobody consumed
        client.delete(key)


def invoke(*args: str) -> Result:
    return CliRunner().invoke(pmrunner, ["run", *args], catch_exceptions=False)


def structure(output: str) -> list[str]:
    """The cli report's item, folder and assertion lines (no timings or sizes)."""
    return [line.rstrip() for line in output.splitlines() if STRUCTURE.match(line)]


@pytest.mark.parametrize("name", sorted(MANIFEST))
def test_distributed_run_reports_what_a_local_run_reports(
    name: str, app: Celery, broker_env: Settings, base_url: str, tmp_path: Path
) -> None:
    args = run_arguments(name, base_url)
    report = ["-r", "cli,json", "--no-color", "--reporter-json-export"]
    local = invoke(*args, *report, str(tmp_path / "local.json"))
    with in_process_worker(app, [broker_env.queue_for(broker_env.default_network)]):
        distributed = invoke(
            *args, "--distributed", "--wait", "60", *report, str(tmp_path / "dist.json")
        )
    local_report = json.loads((tmp_path / "local.json").read_text())
    distributed_report = json.loads((tmp_path / "dist.json").read_text())
    assert outcomes(distributed_report) == outcomes(local_report) == expected(name)
    assert any(execution["assertions"] for execution in outcomes(local_report)["executions"])
    assert distributed_report["run"]["stats"] == local_report["run"]["stats"]
    assert structure(local.output)
    assert structure(distributed.output) == structure(local.output)
    assert distributed.exit_code == local.exit_code, distributed.output


SECRET_TESTS = [
    'const sent = pm.response.json().headers["x-token"];',
    'pm.test("sees the token", () => pm.expect(sent).to.eql(pm.environment.get("token")));',
    'pm.test("fails on purpose", () => pm.expect(1).to.eql(2));',
    'pm.environment.set("seen", "yes");',
]


def secret_collection(path: Path) -> Path:
    """A request that sends a secret in a header; its test reads it back from the echo."""
    request = {
        "method": "GET",
        "url": "{{baseUrl}}/headers",
        "header": [{"key": "X-Token", "value": "{{token}}"}],
    }
    event = {"listen": "test", "script": {"exec": SECRET_TESTS}}
    item = {"name": "headers", "request": request, "event": [event]}
    path.write_text(json.dumps({"info": {"name": "Secret"}, "item": [item]}))
    return path


def test_failing_run_exits_1_and_masks_secrets_like_a_local_run(
    app: Celery, broker_env: Settings, base_url: str, tmp_path: Path
) -> None:
    token = "tok-" + "s3cr3t" * 3
    values = [
        {"key": "baseUrl", "value": base_url, "enabled": True},
        {"key": "token", "value": token, "type": "secret", "enabled": True},
    ]
    (tmp_path / "env.json").write_text(json.dumps({"name": "E", "values": values}))
    collection = secret_collection(tmp_path / "c.json")
    export = tmp_path / "out.json"
    args = [str(collection), "-e", str(tmp_path / "env.json"), "--verbose", "--no-color"]
    with in_process_worker(app, [broker_env.queue_for(broker_env.default_network)]):
        result = invoke(*args, "--distributed", "--export-environment", str(export))
    assert result.exit_code == 1, result.output
    assert "✓  sees the token" in result.output and "1. fails on purpose" in result.output
    assert "X-Token: ********" in result.output
    assert token not in result.output
    exported = {v["key"]: v for v in json.loads(export.read_text())["values"]}
    assert exported["token"]["value"] == token  # the next run's input keeps the real value
    assert exported["token"]["type"] == "secret"
    assert exported["seen"]["value"] == "yes"


def test_no_worker_times_out_with_a_clear_message(
    app: Celery, broker_env: Settings, base_url: str
) -> None:
    args = run_arguments("requests", base_url)
    result = invoke(*args, "--distributed", "--wait", "2")
    line = single_error_line(result)
    queue = broker_env.queue_for(broker_env.default_network)
    assert re.search(r"run [0-9a-f]{32} has no report after 2 s", line), line
    assert f"-Q {queue}" in line and "worker" in line


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def test_unreachable_redis_is_waited_for_then_one_error_line(
    monkeypatch: pytest.MonkeyPatch, base_url: str
) -> None:
    port = free_port()
    monkeypatch.setenv("PMRUNNER_REDIS_URL", f"redis://:hidden-pw@127.0.0.1:{port}/0")
    monkeypatch.setenv("PMRUNNER_REDIS_RETRY_SECONDS", "2")
    started = time.monotonic()
    result = invoke(*run_arguments("requests", base_url), "--distributed")
    assert 2 <= time.monotonic() - started < 10
    assert result.exit_code == 1, result.output
    waiting, error = result.stderr.splitlines()
    assert waiting.startswith(f"waiting for Redis at redis://:**@127.0.0.1:{port}/0 (")
    assert waiting.endswith("trying for up to 2 s (PMRUNNER_REDIS_RETRY_SECONDS)")
    assert error.startswith("error: ")
    assert f"cannot reach Redis at redis://:**@127.0.0.1:{port}/0" in error
    assert "hidden-pw" not in result.output and "Traceback" not in result.output


def test_wait_without_distributed_is_a_mistake(base_url: str) -> None:
    result = invoke(*run_arguments("requests", base_url), "--wait", "5")
    assert "--wait applies to distributed runs only" in single_error_line(result)


def test_resend_unsafe_without_distributed_is_a_mistake(base_url: str) -> None:
    result = invoke(*run_arguments("requests", base_url), "--no-resend-unsafe")
    line = single_error_line(result)
    assert "--[no-]resend-unsafe applies to distributed runs only" in line
