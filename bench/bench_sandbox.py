"""What isolating scripts costs, measured side by side in one run.

    python bench/bench_sandbox.py [--repeat 3]

Part 1, in this process: the boot of a script context (a V8 isolate with
Postman's sandbox; every run gets a fresh one), the memory one context adds,
and a one-line test script with and without the guard on built-ins.

Part 2, a real worker (``celery -A worker worker``, threads pool, concurrency
32) started cold (``PMRUNNER_SCRIPT_CONTEXTS_WARM=0``: contexts booted on
demand) and warm (the default: booted before it consumes): the time from
dispatch to report of the first run after the worker answers a ping, of the
tenth, and the worker's RSS after them.

Needs a Redis (``PMRUNNER_REDIS_URL``, default the local one, database 11);
starts its own workers and echo server. Traffic stays on loopback.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.echo_server import serve  # noqa: E402

REDIS_URL = os.environ.get("PMRUNNER_REDIS_URL", "redis://127.0.0.1:6379/11")
ONE_LINE = 'pm.test("status", () => pm.response.to.have.status(200));'
RUNS_PER_WORKER = 10


def rss_mib(pid: int | str = "self") -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def part_engine(repeat: int) -> None:
    from runtime.sandbox.engine import SandboxContext
    from tests.unit.test_sandbox import RecordingServices, response, scopes

    boots = []
    for _ in range(max(repeat, 3) + 1):
        context = SandboxContext()
        started = time.perf_counter()
        context.boot()
        boots.append(time.perf_counter() - started)
        context.close()
    before = rss_mib()
    kept = [SandboxContext() for _ in range(4)]
    for context in kept:
        context.boot()
    per_context = (rss_mib() - before) / len(kept)
    for context in kept:
        context.close()
    print(f"context boot: median {statistics.median(boots[1:]) * 1000:.0f} ms")
    print(f"memory per context: {per_context:.1f} MiB RSS")

    guarded, plain = SandboxContext(), SandboxContext(protect_builtins=False)
    times: dict[str, list[float]] = {"guarded": [], "plain": []}
    for _ in range(200 * repeat):
        for name, context in (("guarded", guarded), ("plain", plain)):
            started = time.perf_counter()
            context.execute(
                listen="test",
                source=ONE_LINE,
                context={**scopes(), "response": response()},
                services=RecordingServices(),
                timeout_ms=5000,
            )
            times[name].append(time.perf_counter() - started)
    with_guard = statistics.median(times["guarded"][20:]) * 1000
    without = statistics.median(times["plain"][20:]) * 1000
    print(
        f"one-line test script: {with_guard:.2f} ms with the built-in guard, "
        f"{without:.2f} ms without ({with_guard / without:.2f}x)"
    )
    guarded.close()
    plain.close()


def one_request(base: str) -> dict[str, Any]:
    return {
        "info": {"_postman_id": uuid.uuid4().hex, "name": "first step"},
        "item": [
            {
                "name": "get",
                "request": {"method": "GET", "url": f"{base}/get"},
                "event": [{"listen": "test", "script": {"exec": [ONE_LINE]}}],
            }
        ],
    }


def worker_latency(warm: int, base: str) -> tuple[float, float, float]:
    """First and tenth run (dispatch to report, seconds) and RSS (MiB) of a new worker."""
    from celery import Celery

    from tasks.context import Services
    from tasks.dispatch import RunRequest, start_run
    from tasks.finalize import wait_for_report
    from worker.app import create_app, worker_command
    from worker.settings import Settings

    tag = uuid.uuid4().hex[:8]
    settings = Settings(
        redis_url=REDIS_URL, key_prefix=f"pmrbench:{tag}:", default_network=f"bench{tag}"
    )
    env = {**os.environ, **settings.to_env(), "PMRUNNER_SCRIPT_CONTEXTS_WARM": str(warm)}
    name = f"bench{tag}"
    worker = subprocess.Popen(
        worker_command([settings.queue_for(settings.default_network)], name=f"{name}@%h"),
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    app: Celery = create_app(settings)
    try:
        wait_for_ping(app, name)
        durations = []
        for _ in range(RUNS_PER_WORKER):
            started = time.perf_counter()
            run_id = start_run(app, RunRequest(one_request(base)))
            if wait_for_report(Services.of(app), run_id, 60) is None:
                raise SystemExit("a run did not report")
            durations.append(time.perf_counter() - started)
        return durations[0], durations[-1], rss_mib(worker.pid)
    finally:
        os.killpg(worker.pid, signal.SIGTERM)
        worker.wait(30)


def wait_for_ping(app: Any, name: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(name in next(iter(reply)) for reply in app.control.ping(timeout=0.2) or []):
            return
    raise SystemExit(f"worker {name} did not answer within {timeout} s")


def part_worker(repeat: int) -> None:
    figures: dict[str, list[tuple[float, float, float]]] = {"cold": [], "warm": []}
    with serve() as base:
        for _ in range(repeat):
            figures["cold"].append(worker_latency(0, base))
            figures["warm"].append(worker_latency(2, base))
    print(f"\nnew worker, one scripted request per run (median of {repeat} workers each):")
    for mode, rows in figures.items():
        first = statistics.median(r[0] for r in rows) * 1000
        tenth = statistics.median(r[1] for r in rows) * 1000
        rss = statistics.median(r[2] for r in rows)
        print(
            f"  {mode}: first run {first:6.0f} ms, tenth run {tenth:5.0f} ms, "
            f"worker RSS after {RUNS_PER_WORKER} runs {rss:.0f} MiB"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    print(f"machine: {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}")
    part_engine(args.repeat)
    part_worker(args.repeat)
    return 0


if __name__ == "__main__":
    sys.exit(main())
