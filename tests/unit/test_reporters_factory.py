"""Choosing reporters: parsing their names, and default or given report paths."""

from __future__ import annotations

import io
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest

from pmrunner.errors import InputError
from runtime.events import Listeners
from runtime.reporters import (
    CliReporter,
    JsonReporter,
    JunitReporter,
    build_reporters,
    default_report_path,
    parse_reporter_names,
)
from tests.unit.reporting_helpers import replay, sample_run


def test_parse_reporter_names_splits_dedupes_and_rejects_unknown() -> None:
    assert parse_reporter_names(["cli,json", " junit ", "json"]) == ["cli", "json", "junit"]
    with pytest.raises(InputError, match="unknown reporter 'htmlextra'"):
        parse_reporter_names(["cli,htmlextra"])
    with pytest.raises(InputError, match="no reporter"):
        parse_reporter_names([","])


def test_build_reporters_uses_default_paths(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    reporters = build_reporters(
        ["cli,json", "junit"],
        json_path=None,
        junit_path=None,
        stream=io.StringIO(),
        color=False,
        verbose=False,
        collection_name="My API: v2",
    )
    cli, json_reporter, junit = reporters
    assert isinstance(cli, CliReporter)
    assert isinstance(json_reporter, JsonReporter)
    assert isinstance(junit, JunitReporter)
    for reporter, extension in ((json_reporter, "json"), (junit, "xml")):
        assert reporter.path.parent == tmp_path / "newman"
        assert re.fullmatch(
            rf"My-API-v2-\d{{4}}(-\d\d){{5}}-\d{{3}}\.{extension}", reporter.path.name
        )
    replay(sample_run(), Listeners(reporters))
    assert json_reporter.path.is_file()
    assert junit.path.is_file()


def test_build_reporters_honours_paths_and_folders(tmp_path: Path) -> None:
    folder = tmp_path / "reports"
    folder.mkdir()
    json_reporter, junit = build_reporters(
        ["json", "junit"],
        json_path=tmp_path / "exact.json",
        junit_path=folder,
        stream=io.StringIO(),
        color=False,
        verbose=False,
        collection_name="Demo",
    )
    assert isinstance(json_reporter, JsonReporter)
    assert isinstance(junit, JunitReporter)
    assert json_reporter.path == tmp_path / "exact.json"
    assert junit.path.parent == folder
    assert junit.path.suffix == ".xml"


def test_default_report_path_stamps_the_time(tmp_path: Path) -> None:
    moment = datetime(2024, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)
    path = default_report_path("Demo", "json", folder=tmp_path, now=moment)
    assert path == tmp_path / "Demo-2024-01-02-03-04-05-678.json"
