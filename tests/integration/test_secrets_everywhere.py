"""Secrets stay secret: planted in every place a secret can come from, found nowhere.

One unique value per kind of secret (``secrets_helpers.KINDS``) goes into a
collection, its environment and a monitor's secret overrides. A local run, a
distributed run (``pmrunner run`` through a real worker) and a monitor run
(the HTTP API) then run it, while every key of the Redis database is scanned
over and over. Reports, console output, every log line of this process (the
CLI, the worker, the API), API answers, task messages and Redis are searched.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
import requests
import yaml
from click.testing import CliRunner

from pmrunner.cli import pmrunner
from tests.echo_server import serve
from tests.integration.api_helpers import AUTH, served
from tests.integration.conftest import in_process_worker, wait_until
from tests.integration.secrets_helpers import (
    RedisWatch,
    found_in,
    planted,
    task_messages,
    write_inputs,
)
from worker.app import create_app
from worker.settings import Settings

pytestmark = pytest.mark.integration
MONITOR = "secrets-monitor"


@pytest.fixture()
def base_url() -> Iterator[str]:
    with serve() as url:
        yield url


@pytest.fixture(params=["given-key", "default"])
def cluster(
    request: pytest.FixtureRequest,
    settings: Settings,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    base_url: str,
) -> Iterator[Settings]:
    """Settings of a cluster with a monitor whose secrets file overrides a variable.

    ``given-key``: with ``PMRUNNER_SECRET_KEY``; ``default``: without, so every
    process seals under the key file it makes in the data directory.
    """
    secrets = planted()
    collection, environment = write_inputs(tmp_path, secrets, base_url)
    monitor = {
        "name": "Secrets",
        "uid": MONITOR,
        "collection": str(collection),
        "environment": str(environment),
        "schedule": {"cron": "0 0 1 1 *"},
        "webhooks": [f"{base_url}/post?token={secrets['webhook']}"],
    }
    (tmp_path / "monitors.yaml").write_text(yaml.safe_dump({"monitors": [monitor]}))
    (tmp_path / "secrets.yaml").write_text(
        yaml.safe_dump({MONITOR: {"overrideSecret": secrets["override"]}})
    )
    configured = dataclasses.replace(
        settings,
        api_key=AUTH["x-api-key"],
        monitors_file=tmp_path / "monitors.yaml",
        secrets_file=tmp_path / "secrets.yaml",
        secret_key=f"key-{uuid.uuid4().hex}" if request.param == "given-key" else None,
    )
    for name, value in configured.to_env().items():
        monkeypatch.setenv(name, value)
    configured.__dict__["planted"] = secrets  # frozen dataclass: kept beside the fields
    yield configured
    client = redis.Redis.from_url(settings.redis_url)
    for pattern in (f"*{settings.default_network}*", f"{settings.key_prefix}*"):
        for key in client.scan_iter(pattern):
            client.delete(key)


def delivered(cluster: Settings) -> bool:
    client = redis.Redis.from_url(cluster.redis_url)
    return any(client.scan_iter(f"{cluster.key_prefix}deliveries:*"))


def run_cli(*args: str) -> str:
    result = CliRunner().invoke(pmrunner, ["run", *args], catch_exceptions=False)
    return result.output


def test_no_secret_reaches_a_report_a_log_an_answer_a_message_or_redis(
    cluster: Settings, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    app = create_app(cluster)  # the worker's settings: the cluster's, with its key
    s = cluster.__dict__["planted"]
    collection, environment = (
        tmp_path / "secrets.postman_collection.json",
        tmp_path / "env.json",
    )
    reports = ["-r", "cli,json,junit", "--verbose", "--no-color"]
    seen: dict[str, str] = {}
    caplog.set_level(logging.DEBUG)
    queues = [cluster.queue_for(cluster.default_network), cluster.control_queue]
    with RedisWatch(cluster.redis_url, s) as watch, task_messages() as messages:
        seen["local run"] = run_cli(
            str(collection),
            "-e",
            str(environment),
            *reports,
            "--reporter-json-export",
            str(tmp_path / "local.json"),
            "--reporter-junit-export",
            str(tmp_path / "local.xml"),
        )
        with in_process_worker(app, queues), served(cluster) as api:
            seen["distributed run"] = run_cli(
                str(collection),
                "-e",
                str(environment),
                *reports,
                "--distributed",
                "--reporter-json-export",
                str(tmp_path / "dist.json"),
                "--reporter-junit-export",
                str(tmp_path / "dist.xml"),
            )
            answer = requests.post(f"{api}/monitors/{MONITOR}/run", headers=AUTH, timeout=120)
            assert answer.status_code == 200, answer.text
            seen["monitor run"] = answer.text
            # The monitor's webhook got the report: its URL went through the outbox.
            wait_until(lambda: delivered(cluster), 30, "the webhook delivery")
            run = answer.json()["run"]
            collection_id = json.loads(collection.read_text())["info"]["_postman_id"]
            runs = requests.get(f"{api}/collections/{collection_id}/runs", headers=AUTH, timeout=10)
            seen["runs listing"] = runs.text
            for listed in runs.json()["runs"]:
                url = f"{api}/collections/{collection_id}/runs/{listed['id']}"
                seen[f"run {listed['id']}"] = requests.get(url, headers=AUTH, timeout=10).text
        during = dict(watch.seen)
    after = watch.scan()

    # Every kind was really used: the echo server answered each request.
    assert run["stats"]["requests"] == {"failed": 0, "total": 6}, seen["monitor run"]
    local = json.loads((tmp_path / "local.json").read_text())
    assert [e["item"]["name"] for e in local["run"]["executions"]] == [
        "headers",
        "basic",
        "digest",
        "oauth1",
        "oauth2",
        "script secret",
    ]
    for name in ("local.json", "local.xml", "dist.json", "dist.xml"):
        seen[name] = (tmp_path / name).read_text()
    seen["log records"] = "\n".join(record.getMessage() for record in caplog.records)
    seen["task messages"] = "\n".join(messages)
    leaks = {where: found_in(text, s) for where, text in seen.items() if found_in(text, s)}
    assert leaks == {}
    assert watch.scans >= 3 and messages
    # Not even the run's own credential holders show one: they are sealed.
    assert during == {}
    assert any(":collection:" in key for key in watch.sealed)
    assert any(key.endswith(":states") for key in watch.sealed)
    assert after == {}
    if cluster.secret_key is None:
        assert (cluster.data_dir / "secret-key").stat().st_mode & 0o777 == 0o600
    prefix = cluster.key_prefix
    client = redis.Redis.from_url(cluster.redis_url)
    for key in client.scan_iter(f"{prefix}*"):
        assert client.ttl(key) != -1 or not key.decode().startswith(f"{prefix}run:"), key
