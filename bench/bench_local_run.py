"""Benchmark a local run of 200 scripted requests: pmrunner against newman, side by side.

    python bench/bench_local_run.py [--newman PATH] [--repeat N] [--timeout SECONDS]
                                    [--requests N]

A collection of 200 requests (GET and POST in turn), each with a test script of
three assertions (status, a value from the JSON body, a response header), is
generated into a temporary directory and run against the loopback echo server
(tests/echo_server.py, on 127.0.0.1) by ``pmrunner run`` and by ``newman run``,
each as a child process writing its JSON report. The two runners take turns,
N times each, so machine noise falls on both.

pmrunner's modules are compiled to bytecode first when it runs from a source
checkout (``common.compile_checkout``), as they are in an installed wheel.

Every run is checked from its JSON report: 200 requests executed and all 600
assertions passed, or the benchmark stops with an error, so a broken run cannot
look fast. Then it prints, per runner, the median wall time, the CPU time (user
+ system) per request and the peak RSS of the child process, the ratios
pmrunner/newman, and a verdict against the target: pmrunner takes at most a
quarter of newman's wall time.

Without newman (not on PATH, not at /opt/newman, no --newman), pmrunner's
figures are printed alone. Exit status: 0 target met or no newman to compare
with, 1 target missed, 2 a run failed, timed out or wrote a wrong report.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# common puts the repository root on sys.path, for the tests.* import below.
from common import (
    NEWMAN_FALLBACK,
    BenchmarkError,
    Report,
    compile_checkout,
    find_newman,
    json_report_options,
    pmrunner_command,
    read_report,
)

from tests.echo_server import serve

REQUESTS = 200
ASSERTIONS_PER_REQUEST = 3
TARGET_WALL_RATIO = 0.25
MAX_REPEAT = 50
SCHEMA = "https://schema.getpostman.com/json/collection/v2.1.0/collection.json"
# ru_maxrss is in KiB on Linux and in bytes on macOS.
RSS_UNIT_BYTES = 1 if sys.platform == "darwin" else 1024


@dataclass(frozen=True)
class Measurement:
    """What one child process cost.

    Args:
        wall: seconds from starting the process to reaping it.
        cpu: user + system CPU seconds of the process (and any children it reaped).
        peak_rss: the largest resident set size it reached, in bytes.
    """

    wall: float
    cpu: float
    peak_rss: int


@dataclass
class Runner:
    """A runner under test and its measurements so far.

    Args:
        name: the name printed in the table and in errors.
        command: the argv prefix before ``run <collection> ...``.
    """

    name: str
    command: list[str]
    measurements: list[Measurement] = field(default_factory=list)

    @property
    def median_wall(self) -> float:
        return statistics.median(m.wall for m in self.measurements)

    @property
    def median_cpu_per_request(self) -> float:
        return statistics.median(m.cpu for m in self.measurements) / REQUESTS

    @property
    def peak_rss(self) -> int:
        return max(m.peak_rss for m in self.measurements)


# --- the server ----------------------------------------------------------------------


# --- the collection -------------------------------------------------------------------


def test_script(index: int) -> list[str]:
    """The test script of request ``index``: status, JSON body and header checks."""
    return [
        'pm.test("status is 200", () => pm.response.to.have.status(200));',
        f'pm.test("echoes n", () => pm.expect(pm.response.json().args.n).to.eql("{index}"));',
        'pm.test("answers JSON", () => '
        'pm.expect(pm.response.headers.get("Content-Type")).to.include("application/json"));',
    ]


def build_item(index: int) -> dict[str, Any]:
    """Request ``index`` of the collection: a GET on even indexes, a JSON POST on odd ones."""
    method, path = ("GET", "get") if index % 2 == 0 else ("POST", "post")
    request: dict[str, Any] = {
        "method": method,
        "header": [{"key": "X-Bench-Index", "value": str(index)}],
        "url": {
            "raw": f"{{{{baseUrl}}}}/{path}?n={index}",
            "host": ["{{baseUrl}}"],
            "path": [path],
            "query": [{"key": "n", "value": str(index)}],
        },
    }
    if method == "POST":
        request["header"].append({"key": "Content-Type", "value": "application/json"})
        request["body"] = {"mode": "raw", "raw": json.dumps({"n": index})}
    return {
        "name": f"request {index:03d}",
        "request": request,
        "event": [
            {"listen": "test", "script": {"type": "text/javascript", "exec": test_script(index)}}
        ],
    }


def write_collection(directory: Path) -> Path:
    """Write the benchmark collection (v2.1) into ``directory``; returns its path."""
    collection = {
        "info": {"name": "bench-local-run", "schema": SCHEMA},
        "item": [build_item(index) for index in range(REQUESTS)],
    }
    path = directory / "bench.postman_collection.json"
    path.write_text(json.dumps(collection), encoding="utf-8")
    return path


# --- running and measuring ------------------------------------------------------------


def spawn_measured(
    name: str, argv: list[str], timeout: float, stderr_path: Path
) -> tuple[int, Measurement]:
    """Run ``argv`` to its end and measure it.

    os.wait4 gives the rusage of this one child, where RUSAGE_CHILDREN would mix
    the two runners' peak RSS. A timer kills the child after ``timeout`` seconds.

    Args:
        name: the runner's name, for error messages.
        argv: the command line.
        timeout: seconds after which the child is killed.
        stderr_path: where the child's standard error is written.

    Returns:
        The exit code (negative: killed by that signal) and the measurement.

    Raises:
        BenchmarkError: the child ran past ``timeout``.
    """
    timed_out = threading.Event()
    with stderr_path.open("wb") as stderr:
        started = time.perf_counter()
        try:
            process = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=stderr
            )
        except OSError as error:
            raise BenchmarkError(f"cannot start {name} ({argv[0]}): {error}") from None

        def kill() -> None:
            timed_out.set()
            process.kill()

        killer = threading.Timer(timeout, kill)
        killer.start()
        # Wait without reaping, so the timer can never signal a recycled pid.
        os.waitid(os.P_PID, process.pid, os.WEXITED | os.WNOWAIT)
        wall = time.perf_counter() - started
        killer.cancel()
        killer.join()
        _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    if timed_out.is_set():
        raise BenchmarkError(f"{name} did not finish within {timeout:g} s")
    cpu = usage.ru_utime + usage.ru_stime
    return process.returncode, Measurement(wall, cpu, usage.ru_maxrss * RSS_UNIT_BYTES)


def check_report(report: Report, runner: str) -> None:
    """Make sure a run executed every request and passed every assertion.

    Raises:
        BenchmarkError: naming what is missing or what failed.
    """
    try:
        run = report["run"]
        executions = run["executions"]
        assertions = [a for e in executions for a in e.get("assertions") or []]
        failed = [
            f"{e['item']['name']}: {a['assertion']}: {a['error'].get('message')}"
            for e in executions
            for a in e.get("assertions") or []
            if a.get("error")
        ]
        requests_total = run["stats"]["requests"]["total"]
        failures = len(run.get("failures") or [])
    except (KeyError, TypeError, AttributeError) as error:
        raise BenchmarkError(f"{runner}'s JSON report has an unexpected shape: {error!r}") from None
    if len(executions) != REQUESTS or requests_total != REQUESTS:
        raise BenchmarkError(
            f"{runner} executed {len(executions)} items and counted {requests_total} requests;"
            f" expected {REQUESTS}"
        )
    expected_assertions = REQUESTS * ASSERTIONS_PER_REQUEST
    if len(assertions) != expected_assertions:
        raise BenchmarkError(
            f"{runner} ran {len(assertions)} assertions; expected {expected_assertions}"
        )
    if failed or failures:
        shown = "; ".join(failed[:3]) or "see run.failures in the report"
        raise BenchmarkError(f"{runner} reported {max(len(failed), failures)} failures: {shown}")


def run_once(
    runner: Runner, collection: Path, base_url: str, scratch: Path, timeout: float
) -> Measurement:
    """Run the collection once with ``runner``, check its report and return the measurement.

    Raises:
        BenchmarkError: the run failed, timed out or its report is wrong; the
            message ends with the tail of the runner's standard error.
    """
    attempt = len(runner.measurements) + 1
    report_path = scratch / f"{runner.name}-{attempt}.json"
    stderr_path = scratch / f"{runner.name}-{attempt}.stderr"
    argv = [
        *runner.command,
        "run",
        str(collection),
        "--env-var",
        f"baseUrl={base_url}",
        *json_report_options(report_path),
    ]
    try:
        code, measurement = spawn_measured(runner.name, argv, timeout, stderr_path)
        check_report(read_report(report_path, runner.name), runner.name)
        if code != 0:
            raise BenchmarkError(f"{runner.name} exited with status {code}")
    except BenchmarkError as error:
        tail = stderr_path.read_text(encoding="utf-8", errors="replace")[-2000:].strip()
        tail = tail or "(empty)"
        raise BenchmarkError(f"{error}\n--- {runner.name} stderr (tail) ---\n{tail}") from None
    return measurement


def measure(runners: list[Runner], repeat: int, timeout: float) -> None:
    """Run every runner ``repeat`` times, alternating which goes first in each round."""
    with serve() as base_url, tempfile.TemporaryDirectory(prefix="pmrunner-bench-") as scratch:
        collection = write_collection(Path(scratch))
        for round_index in range(repeat):
            order = runners if round_index % 2 == 0 else runners[::-1]
            for runner in order:
                done = run_once(runner, collection, base_url, Path(scratch), timeout)
                runner.measurements.append(done)
                print(
                    f"round {round_index + 1}/{repeat} {runner.name:9} {done.wall:7.2f} s",
                    file=sys.stderr,
                    flush=True,
                )


# --- reporting ------------------------------------------------------------------------


def print_table(runners: list[Runner]) -> None:
    """Print one row per runner, then the ratios pmrunner/newman when both ran."""
    print(f"{REQUESTS} requests, {REQUESTS * ASSERTIONS_PER_REQUEST} assertions per run")
    header = f"{'runner':10} {'runs':>4} {'median wall':>12} {'min-max wall':>14}"
    print(f"{header} {'CPU/request':>12} {'peak RSS':>10}")
    for runner in runners:
        walls = [m.wall for m in runner.measurements]
        print(
            f"{runner.name:10} {len(walls):>4} {runner.median_wall:>10.2f} s"
            f" {f'{min(walls):.2f}-{max(walls):.2f} s':>14}"
            f" {runner.median_cpu_per_request * 1000:>9.2f} ms"
            f" {runner.peak_rss / 2**20:>6.1f} MiB"
        )
    if len(runners) == 2:
        ours, theirs = runners
        print(
            f"pmrunner/newman: wall {ours.median_wall / theirs.median_wall:.2f},"
            f" CPU/request {ours.median_cpu_per_request / theirs.median_cpu_per_request:.2f},"
            f" peak RSS {ours.peak_rss / theirs.peak_rss:.2f}"
        )


def print_verdict(runners: list[Runner]) -> int:
    """Print the verdict line against the wall-time target; returns the exit status."""
    target = f"target: pmrunner at most {TARGET_WALL_RATIO:g}x newman's wall time"
    if len(runners) < 2:
        print(f"verdict: no comparison, newman did not run ({target})")
        return 0
    ours, theirs = runners
    ratio = ours.median_wall / theirs.median_wall
    met = ratio <= TARGET_WALL_RATIO
    print(f"verdict: {'MET' if met else 'MISSED'}, pmrunner took {ratio:.2f}x ({target})")
    return 0 if met else 1


def bounded_repeat(text: str) -> int:
    """argparse type for --repeat: an integer from 1 to MAX_REPEAT."""
    value = int(text)
    if not 1 <= value <= MAX_REPEAT:
        raise argparse.ArgumentTypeError(f"--repeat must be between 1 and {MAX_REPEAT}")
    return value


def main() -> int:
    global REQUESTS  # --requests sets it for the whole run
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--newman", default=None, help="newman executable (default: on PATH)")
    parser.add_argument("--repeat", type=bounded_repeat, default=3, help="runs of each runner")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds allowed per run")
    parser.add_argument(
        "--requests", type=int, default=REQUESTS, help="requests in the collection (default 200)"
    )
    options = parser.parse_args()
    REQUESTS = max(options.requests, 1)
    compile_checkout()  # pmrunner starts as an installed one does, from bytecode
    runners = [Runner("pmrunner", pmrunner_command())]
    newman = find_newman(options.newman)
    if newman is None:
        looked_for = options.newman or f"newman on PATH or {NEWMAN_FALLBACK}"
        print(f"newman not found ({looked_for}): pmrunner's figures alone", file=sys.stderr)
    else:
        runners.append(Runner("newman", [newman]))
    try:
        measure(runners, options.repeat, options.timeout)
    except BenchmarkError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print_table(runners)
    return print_verdict(runners)


if __name__ == "__main__":
    sys.exit(main())
