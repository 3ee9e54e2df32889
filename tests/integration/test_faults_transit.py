"""A step message taken off its queue by a worker that died before filing it, at default
settings: the step is found (nowhere in Redis, never started) once a worker is lost, sent
again, and the run reported within 30 s, each request received exactly once.

kombu's Redis transport pops a message (``BRPOP``) and files it among the unacknowledged
only in a second round trip; the test pops the message itself, as a worker killed between
the two would have, and leaves behind a worker heartbeat that lapses. About 25 s.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import redis

from tasks.context import Services
from tasks.transit import TransitWatch
from tests.fault_rig import FAULT_ITEMS, RecordingTarget, judge
from tests.integration.conftest import WorkerProcess, wait_until
from tests.integration.fault_helpers import (
    default_settings,
    drop_prefix,
    start_fault_run,
    wait_stored,
)
from worker.app import create_app

pytestmark = pytest.mark.integration
REPORT_WITHIN_SECONDS = 30.0


def test_a_step_lost_between_queue_and_worker_is_sent_again(
    redis_url: str, tmp_path: Path, target: RecordingTarget
) -> None:
    settings = default_settings(redis_url, tmp_path)
    assert settings.worker_lapse == 15 and settings.run_deadline == 600
    app = create_app(settings)
    services = Services.of(app)
    client = redis.Redis.from_url(redis_url)
    queue = settings.queue_for(settings.default_network)
    worker: WorkerProcess | None = None
    try:
        # Two runs of six requests in sequence: each has one step message in flight.
        run_id, tag = start_fault_run(app, target.base_url)
        wait_until(lambda: client.llen(queue) == 1, 10, "the first run's step queued")
        # A worker takes the step's message and dies before filing it as unacknowledged.
        taken = client.rpop(queue)
        assert isinstance(taken, bytes)
        step = json.loads(taken)["headers"]["argsrepr"].split()[1].removeprefix("step=")
        services.workers.heartbeat("taker@host", settings.worker_lapse)
        lost_at = time.time()
        waiting_run, waiting_tag = start_fault_run(app, target.base_url)
        time.sleep(3)  # both runs old enough to be looked at; the second one's step waits
        strays = TransitWatch(services).strays()
        assert [(s.run_id, f"{s.branch_key}:{s.number}") for s in strays] == [(run_id, step)]

        worker = WorkerProcess(settings, [queue], "w", concurrency=4)
        worker.wait_ready(app, timeout=60)
        stored_at = wait_stored(services, run_id, REPORT_WITHIN_SECONDS + 30)
        assert stored_at is not None, f"run {run_id} was lost: {worker.log()}"
        assert stored_at - lost_at <= REPORT_WITHIN_SECONDS, stored_at - lost_at
        report = services.store.get(run_id)
        assert report is not None
        verdict = judge(report, target.received(tag))
        assert verdict.problems == [] and verdict.duplicates == 0 and verdict.unknown == 0
        assert sorted(target.received(tag).values()) == [1] * len(FAULT_ITEMS)
        assert wait_stored(services, waiting_run, 30) is not None
        assert sorted(target.received(waiting_tag).values()) == [1] * len(FAULT_ITEMS)
        notes = [
            line
            for execution in report["run"]["executions"]
            for _level, line in execution.get("console", [])
            if "lost on its way to a worker" in str(line)
        ]
        assert len(notes) == 1, report["run"]["executions"]
    finally:
        if worker is not None:
            worker.stop()
        drop_prefix(client, settings.key_prefix)
        client.delete(queue)
