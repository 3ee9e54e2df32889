"""Faults against a distributed run, at default settings: what reports, how soon, and true?

    python bench/faults.py [--kills N] [--redis-url URL]

Injects, one after another, on this machine (real Redis, real Celery workers in
subprocesses, a loopback target that logs what it really received):

- ``kill -9 worker``: N times (default 10), a random one of three workers is
  killed 0.2 to 2 s after three runs start; a fresh worker replaces it;
- ``Redis stopped 5 s``: a redis-server of the benchmark's own is stopped for
  5 s while 5 runs are in flight, and started again on its data;
- ``no worker alive``: 2 runs with ``--timeout 5000`` (deadline 35 s) while
  only the scheduler (``celery -A worker beat``) runs.

Prints one table: fault, times injected, runs, reports, runs lost, duplicate
requests the target saw (safe ones are retried once, flagged; unsafe ones must
be 0), steps reported "outcome unknown", problems (a report that says
something the target contradicts), and the time from the fault to the report
(p50, max). Takes about three minutes.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import redis

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from runtime.options import RunOptions, Timeouts  # noqa: E402
from tasks.context import Services  # noqa: E402
from tasks.dispatch import RunRequest, start_run  # noqa: E402
from tests.fault_rig import PrivateRedis, RecordingTarget, fault_collection, judge  # noqa: E402
from tests.integration.conftest import WorkerProcess  # noqa: E402
from tests.integration.fault_helpers import (  # noqa: E402
    BeatProcess,
    default_settings,
    drop_prefix,
    start_fault_run,
    wait_stored,
)
from worker.app import create_app  # noqa: E402
from worker.settings import Settings  # noqa: E402

WAIT_SECONDS = 90.0


@dataclass
class Row:
    """One fault's figures."""

    fault: str
    injected: int = 0
    runs: int = 0
    reports: int = 0
    duplicates: int = 0
    unknown: int = 0
    problems: list[str] = field(default_factory=list)
    delays: list[float] = field(default_factory=list)

    def collect(
        self,
        services: Services,
        target: RecordingTarget,
        runs: list[tuple[str, str]],
        fault_at: float,
    ) -> None:
        """Wait for each run's report and judge it against what the target saw."""
        for run_id, tag in runs:
            self.runs += 1
            stored_at = wait_stored(services, run_id, WAIT_SECONDS)
            report = services.store.get(run_id)
            if stored_at is None or report is None:
                continue
            self.reports += 1
            self.delays.append(stored_at - fault_at)
            verdict = judge(report, target.received(tag))
            self.duplicates += verdict.duplicates
            self.unknown += verdict.unknown
            self.problems += verdict.problems

    def line(self) -> str:
        p50 = f"{statistics.median(self.delays):.1f}" if self.delays else "-"
        worst = f"{max(self.delays):.1f}" if self.delays else "-"
        return (
            f"{self.fault:<20} {self.injected:>8} {self.runs:>5} {self.reports:>7}"
            f" {self.runs - self.reports:>5} {self.duplicates:>10} {self.unknown:>8}"
            f" {len(self.problems):>8} {p50:>8} {worst:>8}"
        )


HEADER = (
    f"{'fault':<20} {'injected':>8} {'runs':>5} {'reports':>7} {'lost':>5}"
    f" {'duplicates':>10} {'unknown':>8} {'problems':>8} {'p50 (s)':>8} {'max (s)':>8}"
)


def kill_workers(settings: Settings, target: RecordingTarget, kills: int) -> Row:
    row = Row("kill -9 worker")
    app = create_app(settings)
    services = Services.of(app)
    queue = settings.queue_for(settings.default_network)
    chance, serial = random.Random(11), iter(range(10_000))
    workers = [
        WorkerProcess(settings, [queue], f"k{next(serial)}", concurrency=2) for _ in range(3)
    ]
    try:
        for worker in workers:
            worker.wait_ready(app, timeout=60)
        for _ in range(kills):
            runs = [start_fault_run(app, target.base_url) for _ in range(3)]
            time.sleep(chance.uniform(0.2, 2.0))
            doomed = chance.choice(workers)
            doomed.kill()
            fault_at = time.time()
            row.injected += 1
            workers.remove(doomed)
            workers.append(WorkerProcess(settings, [queue], f"k{next(serial)}", concurrency=2))
            row.collect(services, target, runs, fault_at)
            workers[-1].wait_ready(app, timeout=60)
    finally:
        for worker in workers:
            worker.stop()
    return row


def stop_redis(folder: Path, target: RecordingTarget) -> Row:
    row = Row("Redis stopped 5 s")
    server = PrivateRedis(folder)
    server.start()
    settings = default_settings(server.url, folder)
    app = create_app(settings)
    queue = settings.queue_for(settings.default_network)
    workers = [WorkerProcess(settings, [queue], f"r{n}", concurrency=8) for n in range(2)]
    try:
        for worker in workers:
            worker.wait_ready(app, timeout=60)
        runs = [start_fault_run(app, target.base_url, extra_ms=2500) for _ in range(5)]
        while not all(target.received(tag) for _, tag in runs):
            time.sleep(0.1)
        server.stop()
        fault_at = time.time()
        row.injected += 1
        time.sleep(5)
        server.start()
        row.collect(Services.of(app), target, runs, fault_at)
    finally:
        for worker in workers:
            worker.stop()
        server.stop()
    return row


def no_worker(settings: Settings, target: RecordingTarget) -> Row:
    row = Row("no worker alive")
    app = create_app(settings)
    beat = BeatProcess(settings)
    try:
        time.sleep(3)
        fault_at = time.time()
        row.injected += 1
        runs = []
        for n in range(2):
            tag = f"stranded{n}{int(fault_at)}"
            request = RunRequest(
                fault_collection(), options=RunOptions(timeouts=Timeouts(run=5000))
            )
            runs.append((start_run(app, request), tag))
        row.collect(Services.of(app), target, runs, fault_at)
    finally:
        beat.stop()
    return row


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=10, help="workers to kill (default 10)")
    parser.add_argument(
        "--redis-url",
        default="redis://127.0.0.1:6379/12",
        help="the Redis of the kill and no-worker faults (default: db 12 of the local one)",
    )
    args = parser.parse_args()
    target = RecordingTarget().start()
    client = redis.Redis.from_url(args.redis_url)
    with tempfile.TemporaryDirectory() as folder:
        kills = default_settings(args.redis_url, Path(folder))
        alone = default_settings(args.redis_url, Path(folder))
        try:
            rows = [
                kill_workers(kills, target, args.kills),
                stop_redis(Path(folder) / "redis", target),
                no_worker(alone, target),
            ]
        finally:
            for settings in (kills, alone):
                drop_prefix(client, settings.key_prefix)
            target.stop()
    print(HEADER)
    for row in rows:
        print(row.line())
    for row in rows:
        for problem in row.problems:
            print(f"problem ({row.fault}): {problem}", file=sys.stderr)
    return 1 if any(row.problems or row.runs != row.reports for row in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
