"""What a distributed worker costs per request: CPU, Redis commands, memory, waiting.

    python bench/bench_worker.py [--newman PATH] [--repeat 3] [--processes 1]
                                 [--threads 32] [--soak 10000]

Everything runs against a private ``redis-server`` (a unix socket in a
temporary directory, no persistence) so that its command counts are this
benchmark's alone, and the loopback echo server of the test suite. The
worker is ``celery -A worker worker`` as operators start it (threads pool,
``--threads`` threads; ``--processes`` such workers side by side), in
subprocesses; runs are started and awaited from this process as the API
does (``start_run`` and ``wait_for_report``).

Rows:

- **CPU per request, no script**: 500 GETs out of the cookie jar (so each
  is its own branch), the workers' user + system CPU over the run divided
  by 500. Target: at most 1.5 ms.
- **requests per worker CPU-second, two assertions each**: the same with a
  two-assertion test script per request, against newman running the same
  collection (its child CPU from ``wait4``; also without its start-up, the
  CPU of a one-request run). Target: at least 3x newman.
- **independent requests at 50 ms**: 100 and 1,000 GETs to a server that
  answers after 50 ms, the run's own time (dispatch to report) against the
  ideal for the worker's threads (``ceil(n / threads) x 50 ms``). Target: at
  most 1.5x the ideal.
- **worker RSS**: after the runs above (scripts included), then after
  ``--soak`` more scripted requests in runs of 500. Target: under 300 MiB,
  and under 5% growth over the soak.

Each row also prints the Redis commands per request (every process's,
from ``INFO commandstats``) and the machine's load average.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import psutil  # noqa: E402
import redis  # noqa: E402

from bench.common import find_newman  # noqa: E402
from tests.echo_server import EchoHandler, serve  # noqa: E402

BATCH = 500
TIMEOUT = 600.0
MIB = 1024 * 1024
TWO_ASSERTIONS = [
    'pm.test("status is 200", () => pm.response.to.have.status(200));',
    'pm.test("echoes n", () => pm.expect(pm.response.json().args.n).to.eql(pm.info.requestName));',
]


def collection(requests: int, path: str = "/get", script: list[str] | None = None) -> Any:
    """``requests`` GETs out of the cookie jar, each named after its ``n``.

    The same arguments give the same collection, as a monitor runs the same
    collection again and again (workers keep a few parsed versions).
    """
    event = [{"listen": "test", "script": {"exec": script}}] if script else []
    shape = f"{requests}-{path.strip('/').replace('/', '-')}-{'scripted' if script else 'plain'}"
    return {
        "info": {"_postman_id": f"bench-{shape}", "name": "bench worker"},
        "item": [
            {
                "name": str(n),
                "request": {"method": "GET", "url": "{{baseUrl}}" + f"{path}?n={n}"},
                "protocolProfileBehavior": {"disableCookies": True},
                "event": event,
            }
            for n in range(requests)
        ],
    }


class Flights:
    """Requests to ``/delay/`` in flight at the echo server, as (time, +1 or -1) events."""

    lock = threading.Lock()
    events: list[tuple[float, int]] = []

    @classmethod
    def take(cls) -> list[tuple[float, int]]:
        """The events so far, emptying the log."""
        with cls.lock:
            events, cls.events = cls.events, []
        return events

    @staticmethod
    def summary(events: list[tuple[float, int]]) -> tuple[float, int]:
        """Mean (over the time from the first arrival to the last answer) and most in flight."""
        if not events:
            return 0.0, 0
        events.sort()
        level = most = 0
        area = 0.0
        for (at, delta), (following, _) in zip(events, [*events[1:], events[-1]], strict=True):
            level += delta
            most = max(most, level)
            area += level * (following - at)
        span = events[-1][0] - events[0][0]
        return (area / span if span > 0 else float(most)), most


class CountingHandler(EchoHandler):
    """The echo server's handler, logging delayed requests in flight (``Flights``)."""

    def _route(self) -> None:
        if not self.path.startswith("/delay/"):
            super()._route()
            return
        with Flights.lock:
            Flights.events.append((time.time(), 1))
        try:
            super()._route()
        finally:
            with Flights.lock:
                Flights.events.append((time.time(), -1))

    do_GET = _route


@contextlib.contextmanager
def private_redis(scratch: Path) -> Iterator[str]:
    """A redis-server of this benchmark's own on a unix socket; its URL."""
    sock = scratch / "redis.sock"
    server = subprocess.Popen(
        [
            "redis-server",
            "--port",
            "0",
            "--unixsocket",
            str(sock),
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(scratch),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(100):
            if sock.exists():
                break
            time.sleep(0.05)
        yield f"unix://{sock}?db=0"
    finally:
        server.kill()
        server.wait(10)


class Workers:
    """``processes`` worker subprocesses of ``threads`` threads each."""

    def __init__(
        self, env: dict[str, str], processes: int, threads: int, pool: str = "threads"
    ) -> None:
        from worker.app import worker_command

        queue = "net." + env["PMRUNNER_DEFAULT_NETWORK"]
        self.threads = processes * threads
        argv = worker_command([queue], concurrency=threads)
        argv[argv.index("-P") + 1] = pool
        self.children = [
            subprocess.Popen(
                [*argv, "-n", f"bench{n}@%h"],
                cwd=ROOT,
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
            for n in range(processes)
        ]
        self.processes = [psutil.Process(child.pid) for child in self.children]

    def cpu(self) -> float:
        """User + system CPU seconds of the workers and their children so far (running or not)."""
        total = 0.0
        for process in self.processes:
            times = process.cpu_times()
            total += times.user + times.system + times.children_user + times.children_system
            for child in process.children(recursive=True):  # prefork's pool processes
                with contextlib.suppress(psutil.NoSuchProcess):
                    times = child.cpu_times()
                    total += times.user + times.system
        return total

    def rss(self) -> float:
        """Resident set of the workers (and their children), MiB."""
        total = 0
        for process in self.processes:
            total += process.memory_info().rss
            total += sum(child.memory_info().rss for child in process.children(recursive=True))
        return total / MIB

    def stop(self) -> None:
        for child in self.children:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(child.pid, signal.SIGTERM)
        for child in self.children:
            try:
                child.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(child.pid, signal.SIGKILL)
                child.wait(10)


def redis_commands(client: redis.Redis) -> int:
    """Commands the server has executed so far (all clients)."""
    stats = client.info("commandstats")
    return sum(int(entry["calls"]) for entry in stats.values())


class Bench:
    """Runs collections through the workers, measuring each."""

    def __init__(self, env: dict[str, str], workers: Workers, base: str) -> None:
        from runtime.loading import VariableFile
        from tasks.context import Services
        from worker.app import create_app
        from worker.settings import Settings

        settings = Settings(
            redis_url=env["PMRUNNER_REDIS_URL"],
            key_prefix=env["PMRUNNER_KEY_PREFIX"],
            default_network=env["PMRUNNER_DEFAULT_NETWORK"],
        )
        self.app = create_app(settings)
        self.services = Services.of(self.app)
        self.redis = redis.Redis.from_url(env["PMRUNNER_REDIS_URL"])
        self.variables = VariableFile("bench", None, [{"key": "baseUrl", "value": base}])
        self.workers = workers

    def run(self, document: Any) -> dict[str, float]:
        """One run of ``document``: its seconds, worker CPU seconds, Redis commands."""
        from runtime.results import Run
        from tasks.dispatch import RunRequest, start_run
        from tasks.finalize import wait_for_report

        requests = len(document["item"])
        cpu, commands = self.workers.cpu(), redis_commands(self.redis)
        run_id = start_run(self.app, RunRequest(document, self.variables))
        report = wait_for_report(self.services, run_id, TIMEOUT)
        if report is None:
            raise SystemExit(f"run {run_id} did not report within {TIMEOUT:.0f} s")
        cpu, commands = self.workers.cpu() - cpu, redis_commands(self.redis) - commands
        run = Run.from_dict(report["run"])
        if len(run.executions) != requests or run.failed or run.finished_at is None:
            raise SystemExit(f"run {run_id} went wrong: {report['status']}")
        return {
            "started": run.started_at.timestamp(),
            "finished": run.finished_at.timestamp(),
            "seconds": (run.finished_at - run.started_at).total_seconds(),
            "cpu": cpu,
            "commands": commands,
            "requests": requests,
        }


def newman_cpu(newman: str, document: Any, base: str, scratch: Path) -> float:
    """CPU seconds (user + system) of one ``newman run`` of ``document``."""
    import json

    path = scratch / f"newman-{uuid.uuid4().hex[:6]}.json"
    path.write_text(json.dumps(document))
    child = subprocess.Popen(
        [newman, "run", str(path), "--env-var", f"baseUrl={base}", "-r", "cli"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    _, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode != 0:
        raise SystemExit(f"newman failed ({child.returncode})")
    return usage.ru_utime + usage.ru_stime


def median(rows: list[dict[str, float]], key: str) -> float:
    return statistics.median(row[key] / row["requests"] for row in rows)


def load() -> str:
    return "load average " + " ".join(f"{value:.2f}" for value in os.getloadavg())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--newman", default=None)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--processes", type=int, default=1, help="worker processes")
    parser.add_argument("--threads", type=int, default=32, help="threads per worker")
    parser.add_argument(
        "--pool", default="threads", help="Celery pool (threads; prefork: --threads children)"
    )
    parser.add_argument("--soak", type=int, default=10_000, help="requests of the RSS soak")
    options = parser.parse_args()
    repeat = max(options.repeat, 1)
    newman = find_newman(options.newman)
    missed: list[str] = []
    with tempfile.TemporaryDirectory() as scratch_dir, serve(handler=CountingHandler) as base:
        scratch = Path(scratch_dir)
        with private_redis(scratch) as url:
            env = {
                **os.environ,
                "PMRUNNER_REDIS_URL": url,
                "PMRUNNER_KEY_PREFIX": "pmrbench:",
                "PMRUNNER_DEFAULT_NETWORK": "bench",
            }
            workers = Workers(env, options.processes, options.threads, options.pool)
            try:
                missed = measure(Bench(env, workers, base), newman, base, scratch, options, repeat)
            finally:
                workers.stop()
    print("verdict:", "all targets met" if not missed else "MISSED " + ", ".join(missed))
    return 1 if missed else 0


def measure(
    bench: Bench,
    newman: str | None,
    base: str,
    scratch: Path,
    options: argparse.Namespace,
    repeat: int,
) -> list[str]:
    missed: list[str] = []
    workers = bench.workers
    bench.run(collection(10, script=TWO_ASSERTIONS))  # consuming, contexts warm
    print(f"{len(workers.children)} worker process(es), {workers.threads} threads in all; {load()}")

    plain = [bench.run(collection(BATCH)) for _ in range(repeat)]
    cpu_ms = median(plain, "cpu") * 1000
    print(
        f"worker CPU per request, no script   {cpu_ms:7.2f} ms  (target <= 1.5 ms)"
        f"   Redis commands per request {median(plain, 'commands'):5.1f}"
    )
    if cpu_ms > 1.5:
        missed.append("CPU per request")

    scripted = [bench.run(collection(BATCH, script=TWO_ASSERTIONS)) for _ in range(repeat)]
    ours = 1 / median(scripted, "cpu")
    line = f"requests per worker CPU-second, 2 assertions  pmrunner {ours:7.0f}"
    if newman:
        document = collection(BATCH, script=TWO_ASSERTIONS)
        whole = [newman_cpu(newman, document, base, scratch) for _ in range(repeat)]
        start = [newman_cpu(newman, collection(1), base, scratch) for _ in range(repeat)]
        theirs = BATCH / statistics.median(whole)
        marginal = BATCH / max(statistics.median(whole) - statistics.median(start), 1e-6)
        line += (
            f"  newman {theirs:5.0f} ({marginal:5.0f} without its start-up)"
            f"  ratio {ours / theirs:4.2f}x ({ours / marginal:4.2f}x)  (target >= 3x)"
        )
        if ours / theirs < 3:
            missed.append("requests per CPU-second")
    print(line + f"   Redis commands per request {median(scripted, 'commands'):5.1f}")

    for requests in (100, 1000):
        rows = []
        for _ in range(repeat):
            Flights.take()
            row = bench.run(collection(requests, path="/delay/50"))
            events = Flights.take()
            row["in flight"], row["most in flight"] = Flights.summary(events)
            row["head"] = min(at for at, _ in events) - row["started"]
            row["tail"] = row["finished"] - max(at for at, _ in events)
            rows.append(row)
        seconds = statistics.median(row["seconds"] for row in rows)
        mean_flight = statistics.median(row["in flight"] for row in rows)
        most_flight = int(max(row["most in flight"] for row in rows))
        busy = statistics.median(row["cpu"] / row["seconds"] for row in rows)
        ideal = math.ceil(requests / workers.threads) * 0.05
        ratio = seconds / ideal
        print(
            f"{requests:5} independent requests at 50 ms   run {seconds:6.2f} s"
            f"   ideal {ideal:5.2f} s   {ratio:4.2f}x the ideal (target <= 1.5x)"
            f"   in flight mean {mean_flight:4.1f} max {most_flight:3}"
            f"   worker CPU {busy:4.2f} cores"
            f"   first request after {statistics.median(row['head'] for row in rows):4.2f} s,"
            f" report {statistics.median(row['tail'] for row in rows):4.2f} s after the last"
        )
        if ratio > 1.5:
            missed.append(f"{requests} independent")

    before = workers.rss()
    runs = max(options.soak // BATCH, 1)
    for _ in range(runs):
        bench.run(collection(BATCH, script=TWO_ASSERTIONS))
    after = workers.rss()
    growth = (after / before - 1) * 100
    print(
        f"worker RSS {before:6.1f} MiB, after {runs * BATCH} more scripted requests"
        f" {after:6.1f} MiB: {growth:+.1f}% (targets < 300 MiB, < 5%); {load()}"
    )
    if max(before, after) >= 300:
        missed.append("worker RSS")
    if growth >= 5:
        missed.append("RSS growth")
    return missed


if __name__ == "__main__":
    sys.exit(main())
