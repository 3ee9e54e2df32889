"""The self-checking collections pass through ``pmrunner run`` with newman's outcomes.

tests/collections/expected/ holds, per collection, the assertion names and
outcomes newman gave on the same collection against the same server
(recorded with ``python bench/compare_newman.py --record``).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from pmrunner.cli import pmrunner as cli
from tests.collections.outcomes import MANIFEST, expected, outcomes, run_arguments
from tests.echo_server import serve


@pytest.fixture(scope="module")
def base_url() -> Iterator[str]:
    with serve() as url:
        yield url


@pytest.mark.parametrize("name", sorted(MANIFEST))
def test_collection_matches_newman(name: str, base_url: str, tmp_path: Path) -> None:
    report_path = tmp_path / "report.json"
    args = run_arguments(name, base_url)
    result = CliRunner().invoke(
        cli,
        ["run", *args, "-r", "json", "--reporter-json-export", str(report_path)],
        catch_exceptions=False,
    )
    report = json.loads(report_path.read_text())
    assert outcomes(report) == expected(name)
    failed = any(not passed for e in expected(name)["executions"] for _, passed in e["assertions"])
    assert result.exit_code == (1 if failed or expected(name)["scriptErrors"] else 0), result.output
