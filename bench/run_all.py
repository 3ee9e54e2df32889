"""Run every benchmark in turn and print the figures that matter side by side.

    python bench/run_all.py [--newman PATH] [--quick] [--only NAME ...]

Each benchmark script of this folder runs as a child process (its own output
is shown as it comes), with the machine's load average before and after it.
Then one summary prints a line per measure, taken from the benchmarks'
output: local runs against newman, the cost of a script over raw
``requests``, the distributed worker's CPU, Redis commands, waiting and
memory per request, the cost of a hop, the tick, the sandbox. A benchmark
that is missing is named in the summary and skipped; one that fails (exit
status 2 and up) or times out makes the exit status 1. A benchmark's own
exit status 1 means a target missed: its lines say which.

``--quick`` runs fewer repeats and a shorter soak, for a first look; the
figures of ``bench/README.md`` come from a full run.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
TIMEOUT = 3600.0


@dataclass
class Bench:
    """One benchmark script, its arguments, and the summary lines it gives."""

    name: str
    script: str
    args: list[str]
    quick_args: list[str]
    # (label, regular expression on the output); the first match is shown.
    rows: list[tuple[str, str]]
    uses_newman: bool = False
    output: str = ""
    status: str = "not run"
    seconds: float = 0.0
    loads: list[str] = field(default_factory=list)


def benches() -> list[Bench]:
    """The suite, in the order it runs (light ones first)."""
    return [
        Bench(
            "local run, 200 scripted requests",
            "bench_local_run.py",
            ["--repeat", "3"],
            ["--repeat", "1"],
            [
                ("local 200 scripted: pmrunner/newman", r"pmrunner/newman: .*"),
                ("local 200 scripted: pmrunner", r"^pmrunner\s+\d+ .*"),
                ("local 200 scripted: newman", r"^newman\s+\d+ .*"),
            ],
            uses_newman=True,
        ),
        Bench(
            "local run, 2,000 scripted requests (memory)",
            "bench_local_run.py",
            ["--repeat", "1", "--requests", "2000"],
            ["--repeat", "1", "--requests", "2000"],
            [
                ("local 2,000 scripted: pmrunner/newman", r"pmrunner/newman: .*"),
                ("local 2,000 scripted: pmrunner", r"^pmrunner\s+\d+ .*"),
                ("local 2,000 scripted: newman", r"^newman\s+\d+ .*"),
            ],
            uses_newman=True,
        ),
        Bench(
            "cost per request over raw requests",
            "bench_overhead.py",
            [],
            [],
            [
                ("wall time over raw requests", r"^wall time over raw requests: .*"),
                ("CPU time over raw requests", r"^CPU time .* over raw requests: .*"),
                ("what a one-line test adds", r"^a one-line test script adds .*"),
            ],
        ),
        Bench(
            "distributed worker",
            "bench_worker.py",
            ["--repeat", "3"],
            ["--repeat", "1", "--soak", "2000"],
            [
                ("worker CPU per request, no script", r"worker CPU per request.*"),
                ("requests per worker CPU-second", r"requests per worker CPU-second.*"),
                ("100 independent at 50 ms", r"\s*100 independent requests.*"),
                ("1,000 independent at 50 ms", r"\s*1000 independent requests.*"),
                ("worker RSS and growth", r"worker RSS .*"),
            ],
            uses_newman=True,
        ),
        Bench(
            "distributed runs and hops",
            "bench_distributed.py",
            ["--repeat", "3"],
            ["--repeat", "1"],
            [
                (
                    "100 GETs at 50 ms, independent",
                    r"\s*run itself: distributed, disableCookies is .*",
                ),
                ("dependent sequence, per hop", r"\s*distributed .* overhead per hop.*"),
            ],
            uses_newman=True,
        ),
        Bench(
            "tick of 1,000 monitors",
            "bench_tick.py",
            [],
            [],
            [
                ("1,000 monitors: slot -> run started", r"slot -> run started.*"),
                ("1,000 monitors: slot -> first request", r"slot -> first request at.*"),
                ("scheduling CPU per monitor run", r"scheduling CPU per run.*"),
                ("machine during the tick", r"machine: .*"),
            ],
        ),
        Bench(
            "memory with large responses",
            "bench_memory.py",
            ["--no-local-run"],
            ["--no-local-run"],
            [("50 MiB body read by a script", r"50 MiB body, read.*")],
            uses_newman=True,
        ),
        Bench(
            "script isolation",
            "bench_sandbox.py",
            ["--repeat", "3"],
            ["--repeat", "1"],
            [
                ("one-line test script", r"one-line test script.*"),
                ("context boot", r"context boot.*"),
            ],
        ),
    ]


def load() -> str:
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


def run(bench: Bench, newman: str | None, quick: bool) -> None:
    """Run one benchmark, echoing its output; note its status, time and loads."""
    path = HERE / bench.script
    if not path.is_file():
        bench.status = "missing"
        print(f"\n=== {bench.name}: {bench.script} is not there, skipped", flush=True)
        return
    argv = [sys.executable, str(path), *(bench.quick_args if quick else bench.args)]
    if bench.uses_newman and newman:
        argv += ["--newman", newman]
    bench.loads.append(load())
    print(f"\n=== {bench.name}: {' '.join(argv[1:])}  (load {bench.loads[0]})", flush=True)
    started = time.monotonic()
    lines: list[str] = []
    try:
        with subprocess.Popen(
            argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        ) as child:
            assert child.stdout is not None
            for line in child.stdout:
                print("  " + line, end="", flush=True)
                lines.append(line.rstrip("\n"))
                if time.monotonic() - started > TIMEOUT:
                    child.kill()
                    bench.status = "timed out"
            code = child.wait()
    finally:
        bench.seconds = time.monotonic() - started
        bench.loads.append(load())
        bench.output = "\n".join(lines)
    if bench.status != "timed out":
        bench.status = "ok" if code == 0 else f"exit {code}"
    print(f"=== {bench.name}: {bench.status} in {bench.seconds:.0f} s (load {bench.loads[1]})")


def summary(suite: list[Bench], newman: str | None) -> None:
    print("\n" + "=" * 100)
    print(f"summary on {platform.node()}: {os.cpu_count()} CPUs, {platform.platform()}")
    print(f"Python {platform.python_version()}; newman: {newman or 'not found'}")
    for bench in suite:
        loads = " -> ".join(bench.loads) or "-"
        print(f"\n[{bench.name}] {bench.status}, {bench.seconds:.0f} s, load {loads}")
        for label, pattern in bench.rows:
            found = re.search(pattern, bench.output, re.MULTILINE)
            shown = found.group(0).strip() if found else "(no figure)"
            print(f"  {label:40} {shown}")


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--newman", default=None, help="newman executable (default: on PATH)")
    parser.add_argument("--quick", action="store_true", help="fewer repeats, shorter soak")
    parser.add_argument("--only", nargs="*", default=None, help="scripts to run (bench_x.py)")
    options = parser.parse_args()
    sys.path.insert(0, str(HERE))
    from common import find_newman

    newman = find_newman(options.newman)
    suite = benches()
    if options.only:
        suite = [bench for bench in suite if bench.script in options.only]
    for bench in suite:
        run(bench, newman, options.quick)
    summary(suite, newman)
    return 0 if all(bench.status in ("ok", "exit 1", "missing") for bench in suite) else 1


if __name__ == "__main__":
    sys.exit(main())
