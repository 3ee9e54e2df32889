"""kill -9 of workers at random points, 20 times, at default settings: every run reported
within 30 s of the kill, none lost, no unsafe request sent twice, every outcome true.

Takes about four minutes: a kill is noticed when the worker's heartbeat lapses
(15 s by default), and each of the 10 rounds kills two of three workers.
"""

from __future__ import annotations

import random
import time
from pathlib import Path

import pytest
import redis

from tasks.context import Services
from tests.fault_rig import RecordingTarget, StepJournal, judge, run_keys_without_expiry
from tests.integration.conftest import WorkerProcess
from tests.integration.fault_helpers import (
    default_settings,
    drop_prefix,
    start_fault_run,
    wait_stored,
)
from worker.app import create_app

pytestmark = pytest.mark.integration
ROUNDS, KILLS_PER_ROUND, RUNS_PER_ROUND, WORKERS = 10, 2, 3, 3
REPORT_WITHIN_SECONDS = 30.0


def test_killed_workers_lose_no_run_and_send_no_unsafe_request_twice(
    redis_url: str, tmp_path: Path, target: RecordingTarget
) -> None:
    settings = default_settings(redis_url, tmp_path)
    assert settings.run_deadline == 600 and settings.worker_lapse == 15
    app = create_app(settings)
    services = Services.of(app)
    queue = settings.queue_for(settings.default_network)
    chance = random.Random(7)
    workers: list[WorkerProcess] = []
    started: list[WorkerProcess] = []  # killed ones too: their logs tell what they did
    serial = iter(range(1000))
    journal = StepJournal(
        redis.Redis.from_url(redis_url), settings.key_prefix, [queue, settings.control_queue]
    ).start()

    def start_worker() -> WorkerProcess:
        worker = WorkerProcess(settings, [queue], f"w{next(serial)}", concurrency=2)
        workers.append(worker)
        started.append(worker)
        return worker

    def lost(run_id: str, what: str) -> str:
        logs = [
            f"{worker.name}: {line}"
            for worker in started
            for line in worker.log().splitlines()
            if run_id in line
        ]
        return f"{what}\nstep history:\n{journal.history(run_id)}\nworker logs:\n" + "\n".join(logs)

    try:
        for _ in range(WORKERS):
            start_worker()
        for worker in workers:
            worker.wait_ready(app, timeout=60)
        problems: list[str] = []
        for round_number in range(ROUNDS):
            runs = [start_fault_run(app, target.base_url) for _ in range(RUNS_PER_ROUND)]
            for run_id, _tag in runs:
                journal.watch(run_id)
            time.sleep(chance.uniform(0.2, 2.0))
            for doomed in chance.sample(workers, KILLS_PER_ROUND):
                doomed.kill()
                workers.remove(doomed)
                for run_id, _tag in runs:
                    journal.note(run_id, f"killed {doomed.name}")
            killed_at = time.time()
            for _ in range(KILLS_PER_ROUND):
                start_worker()
            for run_id, tag in runs:
                stored_at = wait_stored(services, run_id, REPORT_WITHIN_SECONDS + 30)
                assert stored_at is not None, lost(
                    run_id, f"round {round_number}: run {run_id} was lost"
                )
                assert stored_at - killed_at <= REPORT_WITHIN_SECONDS, lost(
                    run_id,
                    f"round {round_number}: run {run_id} reported"
                    f" {stored_at - killed_at:.1f} s after the kill",
                )
                report = services.store.get(run_id)
                assert report is not None
                verdict = judge(report, target.received(tag))
                problems += [f"round {round_number} run {run_id}: {p}" for p in verdict.problems]
            for worker in workers:
                worker.wait_ready(app, timeout=60)
        assert problems == []
        client = redis.Redis.from_url(redis_url)
        assert run_keys_without_expiry(client, settings.key_prefix) == []
    finally:
        journal.stop()
        for worker in started:
            worker.stop()
        drop_prefix(redis.Redis.from_url(redis_url), settings.key_prefix)
