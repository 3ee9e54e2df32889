"""Distributed runs, measured side by side in one run.

    python bench/bench_distributed.py [--newman PATH] [--repeat 3]

Part 1 - parallelism: 100 requests to one loopback server that answers
after 50 ms, run four ways: ``pmrunner run --distributed`` (one worker
process, threads pool, concurrency 32) as written (requests to one host
share its cookies, so they run in order), the same with every request out
of the cookie jar (``disableCookies``: independent, so parallel),
``pmrunner run`` (local, sequential) and newman. Prints median wall times and the ratio to
newman (target: distributed at least 10x faster). Wall time is the whole
command, process start included; the run's own duration (dispatch to
report) is printed too.

Part 2 - hand-off cost: a 20-step dependent sequence (each step sets a
variable the next one reads) runs distributed and locally against a server
that answers at once. The overhead per hop is the distributed run's time
between the starts of consecutive steps minus the local run's; target:
median under 3 ms.

Needs a Redis (``PMRUNNER_REDIS_URL``, default the local one, database 11);
starts its own worker and echo server and cleans up after itself. Traffic
stays on loopback; every loop is bounded.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import find_newman, pmrunner_command  # noqa: E402
from tests.echo_server import serve  # noqa: E402

REDIS_URL = os.environ.get("PMRUNNER_REDIS_URL", "redis://127.0.0.1:6379/11")
PARALLEL_REQUESTS = 100
NO_JAR = "distributed, disableCookies"
SEQUENCE_STEPS = 20
TIMEOUT = 300


def parallel_collection(cookies: bool = True) -> dict[str, Any]:
    """100 GETs to one host; without ``cookies`` each is out of the jar (``disableCookies``).

    Requests to one host share its cookies, so the planner runs them in
    order unless they are out of the jar.
    """
    behavior = {} if cookies else {"protocolProfileBehavior": {"disableCookies": True}}
    return {
        "info": {"_postman_id": "bench-parallel", "name": "bench parallel"},
        "item": [
            {
                "name": f"r{n}",
                "request": {"method": "GET", "url": "{{baseUrl}}/delay/50?n=" + str(n)},
                **behavior,
            }
            for n in range(PARALLEL_REQUESTS)
        ],
    }


def sequence_collection() -> dict[str, Any]:
    items = []
    for n in range(SEQUENCE_STEPS):
        items.append(
            {
                "name": f"s{n}",
                "request": {
                    "method": "GET",
                    "url": "{{baseUrl}}/get?step=" + str(n) + "&prev={{v}}",
                },
                "event": [
                    {"listen": "test", "script": {"exec": [f'pm.environment.set("v", "{n}");']}}
                ],
            }
        )
    return {"info": {"_postman_id": "bench-sequence", "name": "bench sequence"}, "item": items}


def environment() -> dict[str, str]:
    tag = uuid.uuid4().hex[:8]
    return {
        **os.environ,
        "PMRUNNER_REDIS_URL": REDIS_URL,
        "PMRUNNER_KEY_PREFIX": f"pmrbench:{tag}:",
        "PMRUNNER_DEFAULT_NETWORK": f"bench{tag}",
    }


def start_worker(env: dict[str, str]) -> subprocess.Popen[bytes]:
    from worker.app import worker_command

    queue = "net." + env["PMRUNNER_DEFAULT_NETWORK"]
    worker = subprocess.Popen(
        worker_command([queue], concurrency=32),
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    time.sleep(3)  # connect and start consuming
    return worker


def timed(argv: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    result = subprocess.run(
        argv, cwd=ROOT, env=env, capture_output=True, timeout=TIMEOUT, check=False
    )
    elapsed = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"{argv[0]} failed ({result.returncode}): {result.stderr.decode()[-800:]}")
    return elapsed


def report_of(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())  # type: ignore[no-any-return]


def run_duration(report: dict[str, Any]) -> float:
    timings = report["run"]["timings"]
    return (timings["completed"] - timings["started"]) / 1000


def hop_times(executions: list[Any]) -> list[float]:
    """Milliseconds between the starts of consecutive executions."""
    starts = [execution.started_at.timestamp() for execution in executions]
    return [(b - a) * 1000 for a, b in itertools.pairwise(starts)]


def measured_run(argv: list[str], report: Path, env: dict[str, str]) -> tuple[float, float]:
    """Run a command that writes a newman-shaped JSON report; (whole command, run) seconds."""
    wall = timed([*argv, "-r", "json", "--reporter-json-export", str(report)], env)
    executions = report_of(report)["run"]["executions"]
    if len(executions) != PARALLEL_REQUESTS:
        raise SystemExit(f"{argv[0]} ran {len(executions)} requests, not {PARALLEL_REQUESTS}")
    return wall, run_duration(report_of(report))


def part_parallel(newman: str | None, repeat: int, scratch: Path) -> None:
    collection = scratch / "parallel.json"
    collection.write_text(json.dumps(parallel_collection()))
    out_of_jar = scratch / "parallel-no-cookies.json"
    out_of_jar.write_text(json.dumps(parallel_collection(cookies=False)))
    env = environment()
    worker = start_worker(env)
    walls: dict[str, list[float]] = {}
    runs: dict[str, list[float]] = {}
    try:
        with serve() as base:
            common = ["run", str(collection), "--env-var", f"baseUrl={base}"]
            commands = {
                "distributed": [*pmrunner_command(), *common, "--distributed"],
                "local": [*pmrunner_command(), *common],
                NO_JAR: [*pmrunner_command(), "run", str(out_of_jar), *common[2:], "--distributed"],
            }
            if newman:
                commands["newman"] = [newman, *common]
            for n in range(repeat):
                for name, argv in commands.items():
                    wall, run = measured_run(argv, scratch / f"{name}-{n}.json", env)
                    walls.setdefault(name, []).append(wall)
                    runs.setdefault(name, []).append(run)
    finally:
        os.killpg(worker.pid, signal.SIGTERM)
        worker.wait(30)
    wall = {name: statistics.median(values) for name, values in walls.items()}
    run = {name: statistics.median(values) for name, values in runs.items()}
    print(
        f"\n{PARALLEL_REQUESTS} GETs to one host, server answers after 50 ms (median of {repeat}):"
    )
    print(f"  {'':30} {'whole command':>14} {'run itself':>11}")
    for name in wall:
        print(f"  {name:30} {wall[name]:12.2f} s {run[name]:9.2f} s")
    for label, figures in (("whole command", wall), ("run itself", run)):
        for name in ("distributed", NO_JAR):
            against_newman = ""
            if "newman" in figures:
                speedup = figures["newman"] / figures[name]
                verdict = "meets" if speedup >= 10 else "misses"
                against_newman = f"{speedup:.1f}x faster than newman ({verdict} the 10x target), "
            print(
                f"  {label}: {name} is {against_newman}"
                f"{figures['local'] / figures[name]:.1f}x faster than local"
            )


def part_sequence(repeat: int) -> None:
    from runtime.loading import VariableFile, load_collection
    from runtime.results import Run
    from runtime.runner import run_collection
    from tasks.context import Services
    from tasks.dispatch import RunRequest, start_run
    from tasks.finalize import wait_for_report
    from worker.app import create_app
    from worker.settings import Settings

    env = environment()
    settings = Settings(
        redis_url=env["PMRUNNER_REDIS_URL"],
        key_prefix=env["PMRUNNER_KEY_PREFIX"],
        default_network=env["PMRUNNER_DEFAULT_NETWORK"],
    )
    app = create_app(settings)
    worker = start_worker(env)
    hops_distributed: list[float] = []
    hops_local: list[float] = []
    try:
        with serve() as base:
            variables = VariableFile("bench", None, [{"key": "baseUrl", "value": base}])
            for _ in range(repeat):
                run_id = start_run(app, RunRequest(sequence_collection(), variables))
                report = wait_for_report(Services.of(app), run_id, TIMEOUT)
                if report is None:
                    raise SystemExit("the distributed sequence did not report")
                hops_distributed += hop_times(Run.from_dict(report["run"]).executions)
                local = run_collection(
                    load_collection(sequence_collection()), environment=variables
                )
                hops_local += hop_times(local.executions)
    finally:
        os.killpg(worker.pid, signal.SIGTERM)
        worker.wait(30)
    distributed, local_median = statistics.median(hops_distributed), statistics.median(hops_local)
    overhead = distributed - local_median
    verdict = "meets" if overhead < 3 else "misses"
    print(
        f"\n{SEQUENCE_STEPS}-step dependent sequence, time between step starts "
        f"(median of {len(hops_distributed)} hops):"
    )
    print(
        f"  distributed {distributed:6.2f} ms   local {local_median:6.2f} ms   "
        f"overhead per hop {overhead:5.2f} ms ({verdict} the 3 ms target)"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--newman", default=None)
    parser.add_argument("--repeat", type=int, default=3)
    options = parser.parse_args()
    newman = find_newman(options.newman)
    if newman is None:
        print("newman not found: its column is left out")
    with tempfile.TemporaryDirectory() as scratch:
        part_parallel(newman, max(options.repeat, 1), Path(scratch))
        part_sequence(max(options.repeat, 1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
