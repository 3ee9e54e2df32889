"""Redis stopped for 5 s while 5 runs are in flight, at default settings: every waiting
``pmrunner run --distributed`` prints its report, no step is mislabelled, and every
report comes within 30 s of Redis' return. Uses a redis-server of its own (about 40 s).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from tasks.context import Services
from tests.fault_rig import (
    FAULT_ITEMS,
    PrivateRedis,
    RecordingTarget,
    fault_collection,
    fault_environment,
    judge,
    run_keys_without_expiry,
)
from tests.integration.conftest import ROOT, WorkerProcess, wait_until
from tests.integration.fault_helpers import default_settings
from worker.app import create_app

pytestmark = pytest.mark.integration
RUNS, OUTAGE_SECONDS, REPORT_WITHIN_SECONDS = 5, 5.0, 30.0


@pytest.fixture()
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    server = PrivateRedis(tmp_path)
    server.start()
    yield server
    server.stop()


def test_waiters_and_workers_ride_out_a_redis_restart(
    private_redis: PrivateRedis, tmp_path: Path
) -> None:
    target = RecordingTarget().start()
    settings = default_settings(private_redis.url, tmp_path)
    app = create_app(settings)
    queue = settings.queue_for(settings.default_network)
    workers = [WorkerProcess(settings, [queue], f"r{n}", concurrency=8) for n in range(2)]
    waiters: list[tuple[str, subprocess.Popen[str]]] = []
    try:
        for worker in workers:
            worker.wait_ready(app, timeout=60)
        collection_file = tmp_path / "faults.postman_collection.json"
        collection_file.write_text(json.dumps(fault_collection(extra_ms=2500)))
        for _ in range(RUNS):
            tag = uuid.uuid4().hex[:10]
            environment_file = tmp_path / f"{tag}.postman_environment.json"
            environment_file.write_text(json.dumps(fault_environment(target.base_url, tag)))
            argv = [sys.executable, "-m", "pmrunner.cli", "run", str(collection_file)]
            argv += ["-e", str(environment_file), "--distributed", "--no-color"]
            env = {**os.environ, **settings.to_env()}
            waiters.append(
                (
                    tag,
                    subprocess.Popen(
                        argv,
                        cwd=ROOT,
                        env=env,
                        text=True,
                        stdout=subprocess.PIPE,
                        stderr=subprocess.PIPE,
                    ),
                )
            )
        wait_until(lambda: all(target.received(tag) for tag, _ in waiters), 30, "requests sent")
        private_redis.stop()
        time.sleep(OUTAGE_SECONDS)
        private_redis.start()
        back_at = time.monotonic()
        for tag, waiter in waiters:
            output, errors = waiter.communicate(timeout=REPORT_WITHIN_SECONDS + 60)
            waited = time.monotonic() - back_at
            assert waiter.returncode == 0, f"run {tag}: exit {waiter.returncode}: {errors}"
            assert "executed" in output and "get-c" in output, output
            assert waited <= REPORT_WITHIN_SECONDS, f"run {tag} reported {waited:.1f} s after"
        services = Services.of(app)
        collection_id = json.loads(collection_file.read_text())["info"]["_postman_id"]
        reports = services.store.list(collection_id, limit=100).runs
        assert len(reports) == RUNS
        for report in reports:
            tag = next(v["value"] for v in report["run"]["environment"] if v["key"] == "tag")
            verdict = judge(report, target.received(tag))
            assert verdict.problems == [] and verdict.unknown == 0, verdict
        client = redis.Redis.from_url(private_redis.url)
        assert run_keys_without_expiry(client, settings.key_prefix) == []
    finally:
        for _, waiter in waiters:
            waiter.kill()
        for worker in workers:
            worker.stop()
        target.stop()


def test_a_distributed_run_waits_for_a_redis_that_is_down_when_it_starts(
    tmp_path: Path,
) -> None:
    """``pmrunner run --distributed`` started while Redis is down, at default settings:
    it says once that it waits for Redis, sends the run when Redis comes up 5 s later,
    and prints the report a worker made."""
    target = RecordingTarget().start()
    server = PrivateRedis(tmp_path / "redis")  # not started yet
    settings = default_settings(server.url, tmp_path)
    assert settings.redis_retry_seconds == 60
    collection_file = tmp_path / "faults.postman_collection.json"
    collection_file.write_text(json.dumps(fault_collection()))
    tag = uuid.uuid4().hex[:10]
    environment_file = tmp_path / "faults.postman_environment.json"
    environment_file.write_text(json.dumps(fault_environment(target.base_url, tag)))
    argv = [sys.executable, "-m", "pmrunner.cli", "run", str(collection_file)]
    argv += ["-e", str(environment_file), "--distributed", "--no-color"]
    errors_file = tmp_path / "stderr"
    worker: WorkerProcess | None = None
    with errors_file.open("w") as errors:
        waiter = subprocess.Popen(
            argv,
            cwd=ROOT,
            env={**os.environ, **settings.to_env()},
            text=True,
            stdout=subprocess.PIPE,
            stderr=errors,
        )
    try:
        wait_until(lambda: "waiting for Redis" in errors_file.read_text(), 30, "a waiting line")
        time.sleep(OUTAGE_SECONDS)
        assert waiter.poll() is None, errors_file.read_text()
        server.start()
        worker = WorkerProcess(settings, [settings.queue_for(settings.default_network)], "late")
        output, _ = waiter.communicate(timeout=REPORT_WITHIN_SECONDS + 60)
        errors_seen = errors_file.read_text()
        assert waiter.returncode == 0, errors_seen
        assert "executed" in output and "get-c" in output, output
        waiting = [line for line in errors_seen.splitlines() if "waiting for Redis" in line]
        assert len(waiting) == 1, errors_seen
        assert f"127.0.0.1:{server.port}" in waiting[0] and "up to 60 s" in waiting[0]
        assert sorted(target.received(tag).values()) == [1] * len(FAULT_ITEMS)
    finally:
        waiter.kill()
        if worker is not None:
            worker.stop()
        server.stop()
        target.stop()
