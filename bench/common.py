"""Helpers shared by the benchmarks in bench/: finding the two runners and reading reports.

Not a benchmark itself. Importing it puts the repository root on ``sys.path`` so
the benchmarks can use the test fixtures (``tests.echo_server``, ``tests.collections``).
"""

from __future__ import annotations

import compileall
import json
import shutil
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

# Where the project's machines install newman with npm when it is not on PATH.
NEWMAN_FALLBACK = Path("/opt/newman/node_modules/.bin/newman")

Report = dict[str, Any]
# pmrunner's own packages, as a source checkout holds them at ROOT.
OWN_PACKAGES = ("api", "pmrunner", "runtime", "scheduler", "store", "tasks", "worker")


class BenchmarkError(Exception):
    """A runner could not be found, or a run did not do what the benchmark asked."""


def find_newman(requested: str | None = None) -> str | None:
    """Locate the newman executable.

    Args:
        requested: a path or command name given by the user; when None, ``newman``
            on PATH is tried, then ``NEWMAN_FALLBACK``.

    Returns:
        The path to run, or None when newman is not installed.
    """
    if requested is not None:
        return shutil.which(requested)
    found = shutil.which("newman")
    if found:
        return found
    return str(NEWMAN_FALLBACK) if NEWMAN_FALLBACK.is_file() else None


def pmrunner_command() -> list[str]:
    """The command that starts pmrunner from the active environment.

    The ``pmrunner`` console script next to this interpreter is preferred, as it is
    what users run; without it the CLI module is started with this interpreter.
    """
    script = Path(sys.executable).with_name("pmrunner")
    if script.is_file():
        return [str(script)]
    return [sys.executable, "-m", "pmrunner.cli"]


def json_report_options(report: Path) -> list[str]:
    """newman-style options that make a runner write only its JSON report to ``report``."""
    return ["--reporters", "json", "--reporter-json-export", str(report)]


def read_report(report: Path, runner: str) -> Report:
    """Read a newman-shaped JSON report.

    Args:
        report: the file given to ``--reporter-json-export``.
        runner: the runner's name, for the error message.

    Raises:
        BenchmarkError: the file is missing or is not a JSON report with a ``run``.
    """
    try:
        parsed = json.loads(report.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BenchmarkError(f"{runner} wrote no JSON report at {report}") from None
    except ValueError as error:
        raise BenchmarkError(f"{runner}'s JSON report {report} is not JSON: {error}") from None
    if not isinstance(parsed, dict) or not isinstance(parsed.get("run"), dict):
        raise BenchmarkError(f"{runner}'s JSON report {report} has no 'run' object")
    return parsed


def compile_checkout() -> bool:
    """Compile the checkout's modules to bytecode, as installing pmrunner's wheel does.

    pip writes every module's ``.pyc`` when it installs the wheel. A source
    checkout run with ``PYTHONDONTWRITEBYTECODE`` set (as development
    containers often are) would otherwise compile its ~150 modules from
    source at every start: about 90 ms of CPU that no installed pmrunner
    spends. The files go to ``__pycache__`` folders, which git ignores.

    Returns:
        Whether every module compiled (False: a module has a syntax error).
    """
    ok = True
    for package in OWN_PACKAGES:
        folder = ROOT / package
        if folder.is_dir():
            ok = bool(compileall.compile_dir(folder, quiet=1)) and ok
    return ok
