"""What pmrunner costs per request over a raw ``requests`` loop, measured side by side.

    python bench/bench_overhead.py [--requests N] [--repeat R]

The loopback echo server (tests/echo_server.py) runs in a child process, so
its work falls on neither side's interpreter. In this process, taking turns R
times (default 5), three loops of N GETs (default 200) to its ``/get``:

- ``raw requests``: a ``requests.Session`` that sends each request and reads
  its body;
- ``pmrunner, no script``: pmrunner's in-process runner
  (``runtime.runner.run_collection``) on a collection of the same N requests;
- ``pmrunner, one-line test``: the same, each request with the test script
  ``pm.test("status", () => pm.response.to.have.status(200));``.

A run's script context is booted before its run starts (as a worker's warm
pool does), so the figures are the cost of each request, not of a boot (see
bench_sandbox.py for that). Every run is checked: N executions, no error,
every assertion passed. It prints, for wall time and for the CPU time of
this process (all its threads: V8's too; not the echo server's), the median
time per request of each loop, the ratios to raw requests (median of the
ratios of each round) with the targets (no script at most 1x, a one-line
test at most 2x), what a script adds per request, and the machine's load
average before and after. The verdict is on wall time.

Exit status: 0 when both targets are met, 1 when one is missed, 2 when a run
went wrong.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import requests  # noqa: E402

from runtime.loading import load_collection  # noqa: E402
from runtime.runner import run_collection  # noqa: E402
from runtime.sandbox.pool import default_pool  # noqa: E402

ONE_LINE = 'pm.test("status", () => pm.response.to.have.status(200));'
SCHEMA = "https://schema.getpostman.com/json/collection/v2.1.0/collection.json"
TARGETS = {"pmrunner, no script": 1.0, "pmrunner, one-line test": 2.0}


class BenchmarkError(Exception):
    """A run that did not do what it was asked: its figures would mean nothing."""


def start_echo_server() -> tuple[subprocess.Popen[str], str]:
    """The echo server in a child process, and its base URL."""
    server = subprocess.Popen(
        [sys.executable, "-m", "tests.echo_server", "--port", "0"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert server.stdout is not None
    base_url = server.stdout.readline().strip()
    if not base_url.startswith("http://127.0.0.1:"):
        server.kill()
        raise BenchmarkError(f"the echo server did not start: {base_url!r}")
    return server, base_url


def collection(base_url: str, count: int, script: str | None) -> dict[str, Any]:
    items = []
    for index in range(count):
        item: dict[str, Any] = {
            "name": f"r{index}",
            "request": {"method": "GET", "url": f"{base_url}/get?i={index}"},
        }
        if script is not None:
            item["event"] = [
                {"listen": "test", "script": {"type": "text/javascript", "exec": [script]}}
            ]
        items.append(item)
    return {"info": {"name": "overhead", "schema": SCHEMA}, "item": items}


def raw_loop(base_url: str, count: int) -> Callable[[], None]:
    def run() -> None:
        with requests.Session() as session:
            for index in range(count):
                response = session.get(f"{base_url}/get?i={index}", timeout=30)
                if response.status_code != 200 or not response.content:
                    raise BenchmarkError(f"raw requests: answer {response.status_code}")

    return run


def pmrunner_loop(definition: dict[str, Any], count: int, assertions: int) -> Callable[[], None]:
    parsed = load_collection(definition)

    def run() -> None:
        result = run_collection(parsed)
        executed = len(result.executions)
        failed = sum(execution.failed for execution in result.executions)
        passed = sum(a.passed for execution in result.executions for a in execution.assertions)
        if executed != count or failed or passed != assertions:
            raise BenchmarkError(
                f"pmrunner: {executed} executions, {failed} failed, {passed} assertions passed"
            )

    return run


def warm_one_context() -> None:
    """Boot the next run's context now, and none while a run is timed."""
    pool = default_pool()
    pool.configure(warm=1)
    if pool.warm_up() < 1:
        raise BenchmarkError("no script context could be booted")
    pool.configure(warm=0)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    count, repeat = max(args.requests, 10), max(args.repeat, 1)
    load_before = os.getloadavg()
    server, base_url = start_echo_server()
    try:
        loops = {
            "raw requests": raw_loop(base_url, count),
            "pmrunner, no script": pmrunner_loop(collection(base_url, count, None), count, 0),
            "pmrunner, one-line test": pmrunner_loop(
                collection(base_url, count, ONE_LINE), count, count
            ),
        }
        for loop in loops.values():  # first runs: imports, connections, JIT
            warm_one_context()
            loop()
        times: dict[str, list[float]] = {name: [] for name in loops}
        cpu: dict[str, list[float]] = {name: [] for name in loops}
        for _ in range(repeat):
            for name, loop in loops.items():
                warm_one_context()
                started, cpu_started = time.perf_counter(), time.process_time()
                loop()
                times[name].append((time.perf_counter() - started) / count)
                cpu[name].append((time.process_time() - cpu_started) / count)
    finally:
        server.kill()
        server.wait()
    print(f"{count} GETs to the loopback echo server per loop, {repeat} rounds, taking turns")
    load_after = os.getloadavg()
    print(f"load average before {load_before[0]:.2f}, after {load_after[0]:.2f} (1 min)")
    met = report("wall time", times)
    report("CPU time (this process, every thread)", cpu)
    print(f"verdict (wall time): {'MET' if met else 'MISSED'}")
    return 0 if met else 1


def report(measure: str, times: dict[str, list[float]]) -> bool:
    """Print one table of ``times`` (seconds per request, per round); True when the targets hold."""
    raw = times["raw requests"]
    print(f"\n{measure}")
    print(f"{'loop':26s}{'per request':>12s}{'ratio to raw':>14s}{'target':>8s}")
    verdicts = []
    ratios: list[str] = []
    for name, values in times.items():
        per_request = statistics.median(values) * 1000
        if name == "raw requests":
            print(f"{name:26s}{per_request:>9.3f} ms{'1.00':>14s}{'':>8s}")
            continue
        ratio = statistics.median(value / base for value, base in zip(values, raw, strict=True))
        target = TARGETS[name]
        verdicts.append(ratio <= target)
        ratios.append(f"{name.removeprefix('pmrunner, ')} {ratio:.2f}x")
        print(f"{name:26s}{per_request:>9.3f} ms{ratio:>14.2f}{f'<= {target:g}':>8s}")
    script_cost = statistics.median(
        scripted - plain
        for scripted, plain in zip(
            times["pmrunner, one-line test"], times["pmrunner, no script"], strict=True
        )
    )
    print(f"a one-line test script adds {script_cost * 1000:.3f} ms per request")
    print(f"{measure} over raw requests: {', '.join(ratios)}")
    return all(verdicts)


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchmarkError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
