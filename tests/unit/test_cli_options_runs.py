"""Whole ``pmrunner run`` runs: the real runner against a loopback echo server."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import click
import pytest

from tests.echo_server import serve
from tests.unit.cli_options_helpers import invoke, write


def echo_collection(base_url: str, expected_status: int) -> dict[str, object]:
    test = [f"pm.test('status', () => pm.response.to.have.status({expected_status}));"]
    test.append("pm.environment.set('seen', pm.environment.get('token').length);")
    return {
        "info": {"name": "Echo", "_postman_id": "echo-1"},
        "item": [
            {
                "name": "Get",
                "id": "get-1",
                "request": {
                    "method": "GET",
                    "url": f"{base_url}/get?token={{{{token}}}}",
                    "header": [{"key": "X-Token", "value": "{{token}}"}],
                },
                "event": [{"listen": "test", "script": {"exec": test}}],
            }
        ],
    }


@pytest.fixture
def echo_url() -> Iterator[str]:
    with serve() as url:
        yield url


def run_echo(
    tmp_path: Path, base_url: str, expected_status: int, *extra: str
) -> click.testing.Result:
    collection = write(tmp_path / "c.json", echo_collection(base_url, expected_status))
    environment = write(
        tmp_path / "e.json",
        {"name": "Env", "values": [{"key": "token", "value": "tok-SECRET-1", "type": "secret"}]},
    )
    return invoke(
        "run",
        str(collection),
        *("-e", str(environment), "--color", "off", "-r", "cli,json,junit"),
        *("--reporter-json-export", str(tmp_path / "r" / "report.json")),
        *("--reporter-junit-export", str(tmp_path / "r" / "report.xml")),
        *("--export-environment", str(tmp_path / "r" / "env.json")),
        *extra,
    )


def test_a_passing_run_exits_0_and_writes_reports_and_exports(
    tmp_path: Path, echo_url: str
) -> None:
    result = run_echo(tmp_path, echo_url, 200, "--verbose")
    assert result.exit_code == 0, result.output
    assert "X-Token: ********" in result.stdout
    assert "→ Get" in result.stdout
    assert "  ✓  status" in result.stdout
    assert "tok-SECRET-1" not in result.stdout
    report = json.loads((tmp_path / "r" / "report.json").read_text(encoding="utf-8"))
    assert report["run"]["stats"]["assertions"]["failed"] == 0
    assert report["collection"]["info"]["name"] == "Echo"
    assert "tok-SECRET-1" not in (tmp_path / "r" / "report.json").read_text(encoding="utf-8")
    assert (tmp_path / "r" / "report.xml").read_text(encoding="utf-8").startswith("<?xml")
    exported = json.loads((tmp_path / "r" / "env.json").read_text(encoding="utf-8"))
    values = {v["key"]: v for v in exported["values"]}
    assert values["token"]["value"] == "tok-SECRET-1"
    assert values["token"]["type"] == "secret"
    assert str(values["seen"]["value"]) == "12"


def test_a_failing_run_exits_1_unless_suppressed(tmp_path: Path, echo_url: str) -> None:
    failed = run_echo(tmp_path, echo_url, 201)
    assert failed.exit_code == 1
    assert "1. status" in failed.stdout
    assert "AssertionError" in failed.stdout
    assert failed.stderr == ""
    suppressed = run_echo(tmp_path, echo_url, 201, "-x")
    assert suppressed.exit_code == 0
