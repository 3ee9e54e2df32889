"""One secret key per Redis: a process with another key refuses to start, in one line.

Two hosts are two data directories: without a key given, each process seals
under the key file of its own data directory (made on first use), so the
second "host" holds another key than the cluster's, exactly like a host
that was not given ``PMRUNNER_SECRET_KEY``. Real Redis, real Celery worker
and beat processes, the real ``pmrunner`` commands.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import redis
from celery import Celery

from pmrunner.cli.demo import examples_folder
from pmrunner.errors import ConfigurationError
from store.sealing import Sealer, fingerprint
from store.secret_key import FINGERPRINT_KEY, claim_fingerprint
from tests.integration.api_helpers import KEY, free_port
from tests.integration.conftest import ROOT, WorkerProcess
from worker.app import worker_command
from worker.settings import Settings

pytestmark = pytest.mark.integration
REFUSAL = "this Redis is used with another secret key (fingerprint"


def refused_output(settings: Settings, argv: list[str], **extra: str) -> str:
    """Run a command with ``settings``; it must exit non-zero: what it printed."""
    env = {**os.environ, **settings.to_env(), **extra}
    done = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=90)
    output = done.stdout + done.stderr
    assert done.returncode != 0, output
    return output


def test_a_process_with_another_key_refuses_to_start_and_the_cluster_key_lets_it_in(
    settings: Settings,
    app: Celery,
    tmp_path: Path,
    worker_processes: list[WorkerProcess],
) -> None:
    queue = settings.queue_for(settings.default_network)
    host_a = dataclasses.replace(settings, data_dir=tmp_path / "host-a")
    host_b = dataclasses.replace(settings, data_dir=tmp_path / "host-b", api_key=KEY)
    first = WorkerProcess(host_a, [queue], "keyed-a")
    worker_processes.append(first)
    first.wait_ready(app)
    cluster_key = (host_a.data_dir / "secret-key").read_text().strip()
    stored = redis.Redis.from_url(settings.redis_url).get(settings.key_prefix + FINGERPRINT_KEY)
    assert stored == fingerprint(cluster_key).encode()  # a fingerprint, not the key

    collection = tmp_path / "one.postman_collection.json"
    request = {"name": "one", "request": {"method": "GET", "url": "http://127.0.0.1:9/"}}
    collection.write_text(json.dumps({"info": {"name": "one"}, "item": [request]}))
    cli = [sys.executable, "-m", "pmrunner.cli"]
    monitors = examples_folder() / "monitors.yaml"
    commands = {
        "worker": worker_command([queue], concurrency=2, name="keyed-b@%h"),
        "beat": [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "worker",
            "beat",
            "-l",
            "WARNING",
            "-s",
            str(tmp_path / "beat-schedule"),
        ],
        "api": [*cli, "api", "--port", str(free_port())],
        "run --distributed": [*cli, "run", str(collection), "--distributed"],
        "runner start": [*cli, "runner", "start", "--monitors-file", str(monitors)],
    }
    for name, argv in commands.items():
        output = refused_output(host_b, argv)
        lines = [line for line in output.splitlines() if REFUSAL in line]
        assert len(lines) == 1, (name, output)
        assert fingerprint(cluster_key) in lines[0] and cluster_key not in output, name

    # The same host, given the cluster's key, joins.
    joined = WorkerProcess(
        host_b, [queue], "keyed-b", extra_env={"PMRUNNER_SECRET_KEY": cluster_key}
    )
    worker_processes.append(joined)
    joined.wait_ready(app)


def test_a_rotated_key_opens_what_the_previous_one_sealed_and_takes_the_fingerprint_over(
    app: Celery, settings: Settings
) -> None:
    prefix = settings.key_prefix  # the app fixture removes the keys under it afterwards
    redis_client = redis.Redis.from_url(settings.redis_url)
    old = Sealer("old cluster key")
    claim_fingerprint(redis_client, prefix, old)
    sealed = old.seal("credential")

    rotated = Sealer("new cluster key", previous=["old cluster key"])
    claim_fingerprint(redis_client, prefix, rotated)
    assert redis_client.get(prefix + FINGERPRINT_KEY) == fingerprint("new cluster key").encode()
    assert rotated.open(sealed) == "credential"
    with pytest.raises(ConfigurationError, match="used with another secret key"):
        claim_fingerprint(redis_client, prefix, Sealer("old cluster key"))
