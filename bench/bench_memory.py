"""Peak memory of ``pmrunner run`` for very large responses and compression bombs.

    python bench/bench_memory.py [--newman PATH] [--no-local-run] [--timeout SECONDS]

Each case is one ``pmrunner run`` child process whose collection GETs one URL of a
loopback server that streams the body (tests/big_bodies.py: nothing is held whole in
the server either) and reads the body in a test script. Cases: a small body (the
baseline), a 50 MiB body (at the default maximum response size: read and given to the
script), 500 MiB with Content-Length and chunked, and gzip and brotli bombs (about 1 MB
and 200 KB that decode to 1 GiB). Larger-than-limit bodies fail their request with
"maximum response size"; the peak RSS of the child (os.wait4) is printed per case.

newman runs the small and the 50 MiB cases beside pmrunner, for scale (its own
memory on 500 MiB bodies and bombs is in the gigabytes, so those are not run with
it). Then, unless --no-local-run, bench/bench_local_run.py runs (3 rounds) and its
wall-time ratio to newman is printed. Exit status 1 when a bounded case's peak RSS
is 300 MiB or more, 2 when a run failed in an unexpected way.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

# common puts the repository root on sys.path, for the tests.* imports below.
from bench_local_run import spawn_measured
from common import BenchmarkError, find_newman, json_report_options, pmrunner_command

from tests.big_bodies import MIB, collection_of, serve_big_bodies

RSS_BOUND = 300 * MIB
CASES = {
    "small body (baseline)": ("/bytes/1024", False),
    "50 MiB body, read by a script": (f"/bytes/{50 * MIB}", False),
    "10 MiB binary body, read": (f"/bytes/{10 * MIB}?binary=1", False),
    "500 MiB with Content-Length": (f"/bytes/{500 * MIB}", True),
    "500 MiB chunked": (f"/bytes/{500 * MIB}?chunked=1", True),
    "gzip bomb (1 MB -> 1 GiB)": ("/bomb/gzip", True),
    "brotli bomb (200 KB -> 1 GiB)": ("/bomb/br", True),
}
WITH_NEWMAN = ("small body (baseline)", "50 MiB body, read by a script")


def run_case(command: list[str], url: str, scratch: Path, timeout: float) -> tuple[int, str]:
    """Run one collection of one request with ``command``: (peak RSS, how the request ended)."""
    collection = scratch / "case.postman_collection.json"
    collection.write_text(json.dumps(collection_of({"case": url})))
    report = scratch / "report.json"
    report.unlink(missing_ok=True)
    argv = [*command, "run", str(collection), *json_report_options(report)]
    _, measured = spawn_measured(command[0], argv, timeout, scratch / "stderr.txt")
    return measured.peak_rss, _outcome(report, command[0], url)


def newman_peak(newman: str, url: str, scratch: Path, timeout: float) -> int:
    """newman's peak RSS on one case; its cli reporter, as its JSON reporter cannot
    write a report holding a 50 MiB body (JSON.stringify: Invalid string length)."""
    collection = scratch / "case.postman_collection.json"
    collection.write_text(json.dumps(collection_of({"case": url})))
    argv = [newman, "run", str(collection), "--reporters", "cli"]
    return spawn_measured("newman", argv, timeout, scratch / "stderr.txt")[1].peak_rss


def _outcome(report: Path, runner: str, url: str) -> str:
    try:
        run = json.loads(report.read_text())["run"]
    except (OSError, ValueError, KeyError) as error:
        raise BenchmarkError(f"{runner} wrote no report for {url}: {error}") from None
    failures = [f["error"]["message"] for f in run["failures"] if f["at"] == "request"]
    return "refused: " + failures[0][:60] if failures else "read"


def measure(newman: str | None, timeout: float) -> int:
    """Print one line per case; the exit status."""
    status = 0
    print(f"{'case':32} {'pmrunner':>10} {'newman':>10}  outcome (pmrunner)")
    with serve_big_bodies() as base, tempfile.TemporaryDirectory() as name:
        scratch = Path(name)
        for case, (path, bounded) in CASES.items():
            peak, outcome = run_case(pmrunner_command(), base + path, scratch, timeout)
            theirs = ""
            if newman and case in WITH_NEWMAN:
                theirs = f"{newman_peak(newman, base + path, scratch, timeout) / MIB:.0f} MiB"
            print(f"{case:32} {peak / MIB:>6.0f} MiB {theirs:>10}  {outcome}", flush=True)
            if bounded and (peak >= RSS_BOUND or outcome == "read"):
                status = 1
    return status


def local_run_ratio(newman: str | None) -> None:
    """Run bench_local_run.py briefly and print its pmrunner/newman line."""
    script = Path(__file__).with_name("bench_local_run.py")
    argv = [sys.executable, str(script), "--repeat", "3"] + (["--newman", newman] if newman else [])
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    lines = [line for line in done.stdout.splitlines() if "pmrunner" in line]
    print("local run (bench_local_run.py, 3 rounds):", *lines, sep="\n  ")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--newman", help="newman executable (default: on PATH or /opt/newman)")
    parser.add_argument("--no-local-run", action="store_true", help="skip bench_local_run.py")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds per run")
    args = parser.parse_args()
    newman = find_newman(args.newman)
    try:
        status = measure(newman, args.timeout)
    except BenchmarkError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if not args.no_local_run:
        local_run_ratio(newman)
    return status


if __name__ == "__main__":
    sys.exit(main())
