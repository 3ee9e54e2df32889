"""``pmrunner run`` stays small in memory whatever a server sends: a 500 MB body, a bomb."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.big_bodies import MIB, collection_of, serve_big_bodies

PEAK_RSS_LIMIT = 300 * 1024 * 1024


# The child records its own peak from /proc (VmHWM, since its exec): the rusage that
# wait4 reports would also count the pages a child forked from this large test process
# had mapped before its exec. A local run ends with os._exit (no atexit handlers run).
_RECORD_PEAK = """
import os, sys
out = sys.argv.pop(1)
def record():
    status = open("/proc/self/status").read()
    peak = next(line for line in status.splitlines() if line.startswith("VmHWM:"))
    open(out, "w").write(peak.split()[1])
_exit = os._exit
def exit_recording(code):
    record()
    _exit(code)
os._exit = exit_recording
from pmrunner.cli import main
try:
    main()
finally:
    record()
"""


def run_measured(collection: dict[str, object], folder: Path) -> tuple[int, dict[str, object]]:
    """Run ``pmrunner run`` on the collection in a child process: (peak RSS in bytes, report)."""
    source = folder / "big.postman_collection.json"
    source.write_text(json.dumps(collection))
    report, peak = folder / "report.json", folder / "peak-kib.txt"
    command = [sys.executable, "-c", _RECORD_PEAK, str(peak), "run", str(source), "-r", "json"]
    command += ["--reporter-json-export", str(report)]
    env = {**os.environ, "NO_PROXY": "*"}
    subprocess.run(command, env=env, stdout=subprocess.DEVNULL, check=False, timeout=300)
    return int(peak.read_text()) * 1024, json.loads(report.read_text())


def test_peak_rss_stays_under_300_mb_for_500_mb_bodies_and_bombs(tmp_path: Path) -> None:
    with serve_big_bodies() as base:
        urls = {
            "500 MB with Content-Length": f"{base}/bytes/{500 * MIB}",
            "500 MB chunked": f"{base}/bytes/{500 * MIB}?chunked=1",
            "gzip bomb": f"{base}/bomb/gzip",
            "br bomb": f"{base}/bomb/br",
        }
        peak, report = run_measured(collection_of(urls), tmp_path)
    failures = [f for f in report["run"]["failures"] if f["at"] == "request"]  # type: ignore[index]
    assert [failure["source"]["name"] for failure in failures] == list(urls)
    for failure in failures:
        assert "maximum response size of 52428800 bytes" in failure["error"]["message"]
    assert peak < PEAK_RSS_LIMIT, f"peak RSS {peak / MIB:.0f} MiB"
