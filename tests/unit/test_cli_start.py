"""``pmrunner run`` loads what a local run uses, not the other commands' modules."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pmrunner.cli

# What only the other commands use: the demo server, the worker, the API, the store.
NOT_FOR_A_LOCAL_RUN = (
    "pmrunner.cli.demo",
    "pmrunner.cli.runner",
    "pmrunner.cli.api",
    "pmrunner.cli.listing",
    "pmrunner.cli.distributed",
    "http.server",
    "celery",
    "redis",
    "starlette",
)
PROBE = """
import sys
from pmrunner.cli import main
sys.argv = ["pmrunner", "run", sys.argv[1], "--silent"]
try:
    main()
except SystemExit as end:
    assert not end.code, end.code
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
