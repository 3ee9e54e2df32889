"""The README's quick start, as a new user runs it: a fresh virtualenv, line by line.

``pip install .`` builds and installs the package (pip's local wheels and
cache make it quick); ``pmrunner up --demo`` must then show a passing and a
failing run within 10 s of being started, and stop on Ctrl-C with exit 0.
A second test builds the package without npm on PATH and reads pip's output.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.conftest import ROOT
from tests.integration.terminal_helpers import Terminal, clean_env

pytestmark = pytest.mark.integration
INSTALL_SECONDS = 600
FIRST_RUNS_SECONDS = 10


def quick_start_lines() -> list[str]:
    """The commands of the README's quick start block, comments and blanks left out."""
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Quick start", 1)[1]
    block = re.search(r"```sh\n(.*?)```", section, re.S)
    assert block, "the quick start has no ```sh block"
    lines = [line.split(" #", 1)[0].strip() for line in block.group(1).splitlines()]
    return [line for line in lines if line and not line.startswith("#")]


def fresh_venv(folder: Path) -> dict[str, str]:
    """A new virtualenv; the environment that has it activated, and nothing of pmrunner's."""
    subprocess.run([sys.executable, "-m", "venv", str(folder)], check=True, timeout=120)
    env = clean_env(folder / "data")
    env["VIRTUAL_ENV"] = str(folder)
    env["PATH"] = f"{folder / 'bin'}{os.pathsep}{env['PATH']}"
    return env


def test_readme_quick_start_runs_in_a_fresh_virtualenv(tmp_path: Path) -> None:
    lines = quick_start_lines()
    assert lines[-1] == "pmrunner up --demo", lines
    env = fresh_venv(tmp_path / "venv")
    for line in lines[:-1]:
        done = subprocess.run(
            ["bash", "-c", line],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=INSTALL_SECONDS,
        )
        assert done.returncode == 0, f"{line!r} failed:\n{done.stdout[-2000:]}{done.stderr[-3000:]}"
    assert shutil.which("pmrunner", path=env["PATH"]) == str(tmp_path / "venv" / "bin" / "pmrunner")

    # Run from elsewhere, so the examples come from the installed package.
    terminal = Terminal(["bash", "-c", "exec " + lines[-1]], env, tmp_path / "up.log", tmp_path)
    try:
        terminal.wait_for_line(r": finished, assertions \d+ passed / 0 failed", FIRST_RUNS_SECONDS)
        terminal.wait_for_line(r"Payments: failed, assertions \d+ passed / [1-9]", 2)
        assert "site-packages" in terminal.output().splitlines()[0]  # the installed examples
    finally:
        code, seconds = terminal.interrupt()
    assert code == 0, terminal.output()[-3000:]
    assert seconds < 3, f"Ctrl-C took {seconds:.1f} s"


def test_install_without_npm_says_so_in_one_line(tmp_path: Path) -> None:
    source = tmp_path / "src"
    shutil.copytree(
        ROOT,
        source,
        ignore=shutil.ignore_patterns(".venv", ".git", "*.browser.js", "__pycache__", "*.log"),
    )
    env = fresh_venv(tmp_path / "venv")
    env["PATH"] = str(tmp_path / "venv" / "bin")  # no npm anywhere on it
    env.pop("PMRUNNER_SANDBOX_TARBALL", None)
    done = subprocess.run(
        ["pip", "install", "--no-deps", "."],
        cwd=source,
        env=env,
        capture_output=True,
        text=True,
        timeout=INSTALL_SECONDS,
    )
    output = done.stdout + done.stderr
    assert done.returncode != 0
    assert "error: npm is needed once, at install time, to fetch postman-sandbox" in output
    assert "Traceback" not in output, output
    assert "[1 lines of output]" in output, output
