"""Invoking ``pmrunner`` in-process and writing input files, for the CLI option tests."""

from __future__ import annotations

import json
from pathlib import Path

import click
from click.testing import CliRunner

from pmrunner.cli import pmrunner


def invoke(*args: str) -> click.testing.Result:
    return CliRunner().invoke(pmrunner, list(args))


def single_error_line(result: click.testing.Result) -> str:
    """The one ``error: ...`` line a bad input must print, with exit code 1."""
    assert result.exit_code == 1, result.output
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    assert "Traceback" not in result.output
    return lines[0]


def write(path: Path, document: object) -> Path:
    path.write_text(json.dumps(document), encoding="utf-8")
    return path
