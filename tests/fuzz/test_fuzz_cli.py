"""Property-based test of ``pmrunner run`` in process: any files and options end in a
report or one ``error:`` line, never a traceback, within a time bound per case.

Every request goes to a proxy address on loopback that refuses connections, so no
generated URL is ever resolved or reached.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from unittest import mock

import pytest
from click.testing import CliRunner, Result
from hypothesis import event, given, settings
from hypothesis import strategies as st

from pmrunner.cli import pmrunner
from tests.fuzz.checks import FUZZ
from tests.fuzz.strategies import (
    HUGE_INTEGER,
    collections,
    csv_documents,
    json_documents,
    json_values,
    variable_files,
)

REFUSING_PROXY = "http://127.0.0.1:9"
NUMBERS = st.sampled_from(["0", "1", "2", "-1", "x", "", " 3 ", "1e3", "1.5", HUGE_INTEGER])
OPTIONS = st.lists(
    st.one_of(
        st.tuples(st.sampled_from(["-n", "--timeout-request", "--timeout-script"]), NUMBERS),
        st.tuples(st.sampled_from(["--max-response-size", "--timeout", "--wait"]), NUMBERS),
        st.tuples(st.sampled_from(["--env-var", "--global-var", "--folder"]), st.text(max_size=8)),
        st.tuples(st.just("-r"), st.sampled_from(["cli", "json,junit", "nope", "", ","])),
        st.tuples(st.just("--color"), st.sampled_from(["on", "off", "auto", "sometimes"])),
        st.tuples(st.just("--bail"), st.sampled_from(["", "failure", "folder", "x"])),
        st.tuples(st.just("--delay-request"), st.sampled_from(["0", "1", "-5", "x"])),
        st.tuples(
            st.sampled_from(["--working-dir", "--ssl-extra-ca-certs", "--export-environment"]),
            st.text(max_size=5) | st.sampled_from(["~", "~0/x", "~nosuchuser/x"]),
        ),
        st.tuples(st.sampled_from(["-k", "--verbose", "--ignore-redirects", "-x"])),
    ),
    max_size=4,
)


@pytest.fixture(scope="module")
def folder() -> Iterator[Path]:
    proxies = {name: REFUSING_PROXY for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY")}
    proxies.update({name.lower(): value for name, value in proxies.items()})
    previous = Path.cwd()
    with tempfile.TemporaryDirectory() as name, mock.patch.dict(os.environ, proxies):
        os.environ.pop("NO_PROXY", None)
        os.environ.pop("no_proxy", None)
        os.chdir(name)  # relative paths in generated options land here
        try:
            yield Path(name)
        finally:
            os.chdir(previous)


@settings(FUZZ, deadline=timedelta(seconds=15))  # a run boots the script sandbox at times
@given(
    collection=json_documents(collections()),
    environment=st.none() | json_documents(variable_files()),
    globals_=st.none() | json_documents(variable_files()),
    data=st.none() | csv_documents() | json_documents(json_values()),
    options=OPTIONS,
)
def test_pmrunner_run(
    folder: Path,
    collection: bytes,
    environment: bytes | None,
    globals_: bytes | None,
    data: bytes | None,
    options: list[tuple[str, ...]],
) -> None:
    argv = ["run", str(_write(folder / "c.json", collection))]
    if environment is not None:
        argv += ["-e", str(_write(folder / "env.json", environment))]
    if globals_ is not None:
        argv += ["-g", str(_write(folder / "globals.json", globals_))]
    if data is not None:
        argv += ["-d", str(_write(folder / "data.csv", data))]
    argv += [part for option in options for part in option]
    argv += ["--reporter-json-export", str(folder / "report.json")]
    argv += ["--reporter-junit-export", str(folder / "report.xml")]
    result = CliRunner().invoke(pmrunner, argv, catch_exceptions=True)
    _check(result)


@settings(FUZZ, deadline=timedelta(seconds=15))
@given(collection=collections(), iterations=st.sampled_from(["1", "2"]))
def test_pmrunner_run_runs_hostile_collections(
    folder: Path, collection: object, iterations: str
) -> None:
    """Collections that load are run: whatever their requests hold, the run ends in a report."""
    path = _write(folder / "c.json", json.dumps(collection).encode())
    argv = ["run", str(path), "-n", iterations, "-r", "json,junit"]
    argv += ["--reporter-json-export", str(folder / "report.json")]
    argv += ["--reporter-junit-export", str(folder / "report.xml")]
    result = CliRunner().invoke(pmrunner, argv, catch_exceptions=True)
    _check(result)


def _check(result: Result) -> None:
    output = result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), output
    assert result.exit_code in (0, 1, 2), output
    assert "Traceback" not in output, output
    errors = [line for line in output.splitlines() if line.startswith("error:")]
    assert len(errors) <= 1, output
    event("refused" if errors else f"ran, exit {result.exit_code}")


def _write(path: Path, content: bytes) -> Path:
    path.write_bytes(content)
    return path
