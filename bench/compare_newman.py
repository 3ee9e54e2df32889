"""Run the self-checking collections through newman and pmrunner and compare.

    python bench/compare_newman.py [--newman PATH] [--record]

Prints, per collection, whether the assertion names and outcomes are equal.
With --record, newman's outcomes are written to tests/collections/expected/,
which the test suite compares pmrunner against (so the suite needs no newman).
newman is not a dependency: install it with npm for this comparison.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

# common puts the repository root on sys.path, for the tests.* imports below.
from common import (
    BenchmarkError,
    Report,
    find_newman,
    json_report_options,
    pmrunner_command,
    read_report,
)

from tests.collections.outcomes import COLLECTIONS, MANIFEST, outcomes, run_arguments
from tests.echo_server import serve

RUN_TIMEOUT = 300  # seconds allowed to one collection run


def run_json(command: list[str], args: list[str], report: Path, runner: str) -> Report:
    """Run one collection with ``command`` and return its JSON report."""
    full = [*command, "run", *args, *json_report_options(report)]
    try:
        subprocess.run(full, capture_output=True, check=False, timeout=RUN_TIMEOUT)
    except subprocess.TimeoutExpired:
        raise BenchmarkError(f"{runner} did not finish {args[0]} within {RUN_TIMEOUT} s") from None
    return read_report(report, runner)


def compare(newman: str, record: bool) -> int:
    """Compare every collection of the manifest; returns how many differ."""
    pmrunner = pmrunner_command()
    differing = 0
    width = max(map(len, MANIFEST)) + 1
    with serve() as base_url, tempfile.TemporaryDirectory() as scratch:
        for name in MANIFEST:
            args = run_arguments(name, base_url)
            theirs = outcomes(run_json([newman], args, Path(scratch, f"{name}-n.json"), "newman"))
            ours = outcomes(run_json(pmrunner, args, Path(scratch, f"{name}-p.json"), "pmrunner"))
            same = theirs == ours
            differing += not same
            print(f"{name:{width}} {'equal' if same else 'DIFFERENT'}")
            if not same:
                print("  newman:  ", json.dumps(theirs))
                print("  pmrunner:", json.dumps(ours))
            if record:
                target = COLLECTIONS / "expected" / f"{name}.json"
                target.write_text(json.dumps(theirs, indent=2) + "\n")
    return differing


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--newman", default=None, help="newman executable (default: on PATH)")
    parser.add_argument("--record", action="store_true")
    options = parser.parse_args()
    newman = find_newman(options.newman)
    if newman is None:
        print("newman not found: install it with npm or pass --newman PATH", file=sys.stderr)
        return 2
    try:
        return 1 if compare(newman, options.record) else 0
    except BenchmarkError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
