"""``pmrunner run`` loads what a local run uses, not the other commands' modules."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pmrunner.cli

# What only the other commands (the demo server, the worker, the API, the store), the
# configuration files (YAML) and the other reporters use.
NOT_FOR_A_LOCAL_RUN = (
    "pmrunner.cli.demo",
    "pmrunner.cli.runner",
    "pmrunner.cli.api",
    "pmrunner.cli.listing",
    "pmrunner.cli.distributed",
    "http.server",
    "yaml",
    "runtime.reporters.junit",
    "runtime.reporters.html",
    "xml.etree.ElementTree",
    "celery",
    "redis",
    "starlette",
)
PROBE = """
import sys
from pmrunner.cli import pmrunner
pmrunner.main(["run", sys.argv[1], "--silent"], standalone_mode=False)
print("\\n".join(sorted(sys.modules)))
"""


def test_a_local_run_imports_none_of_the_other_commands(tmp_path: Path) -> None:
    collection = tmp_path / "empty.postman_collection.json"
    collection.write_text(json.dumps({"info": {"name": "empty"}, "item": []}))
    done = subprocess.run(
        [sys.executable, "-c", PROBE, str(collection)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    loaded = set(done.stdout.split())
    assert "runtime.runner" in loaded  # the probe did run
    assert sorted(loaded.intersection(NOT_FOR_A_LOCAL_RUN)) == []


def test_every_name_of_the_package_and_every_command_is_still_there() -> None:
    for name in pmrunner.cli.__all__:
        assert getattr(pmrunner.cli, name) is not None
    group = pmrunner.cli.pmrunner
    names = group.list_commands(None)  # type: ignore[arg-type]
    assert names == ["api", "demo-api", "health", "monitors", "run", "runner", "runs", "up"]
    for name in names:
        assert group.get_command(None, name).name == name  # type: ignore[arg-type, union-attr]


def test_a_local_run_exits_with_its_output_reports_and_status_complete(tmp_path: Path) -> None:
    # The process ends without the interpreter's teardown: what it printed and
    # wrote must all be there, and its exit status the run's.
    collection = tmp_path / "refused.postman_collection.json"
    request = {"method": "GET", "url": "http://127.0.0.1:1/refused"}
    test = {"listen": "test", "script": {"exec": ['pm.test("never", () => {});']}}
    items = [{"name": f"request {n}", "request": request, "event": [test]} for n in range(3)]
    collection.write_text(json.dumps({"info": {"name": "refused"}, "item": items}))
    report = tmp_path / "report.json"
    argv = [sys.executable, "-m", "pmrunner.cli", "run", str(collection), "--no-color"]
    argv += ["-r", "cli,json", "--reporter-json-export", str(report)]
    # Standard output to a pipe is block-buffered, as for a user (no PYTHONUNBUFFERED).
    env = {name: value for name, value in os.environ.items() if name != "PYTHONUNBUFFERED"}
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == 1
    assert done.stdout.count("ECONNREFUSED") >= 3
    assert done.stdout.rstrip().endswith('inside "request 2"')  # the last line of the report
    assert json.loads(report.read_text())["run"]["stats"]["requests"]["total"] == 3
    suppressed = subprocess.run([*argv, "-x"], capture_output=True, text=True, timeout=120, env=env)
    assert suppressed.returncode == 0
    assert suppressed.stdout.rstrip().endswith('inside "request 2"')
