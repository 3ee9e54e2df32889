"""Property-based tests: a monitors.yaml or networks file of any content is read or
refused in one line, and a bad edit of monitors.yaml keeps the last good monitors."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given

from scheduler.local_source import LocalMonitorSource, read_monitors_file
from tasks.egress import egress_sections
from tests.fuzz.checks import FUZZ, file_read_or_refused
from tests.fuzz.strategies import json_values, yaml_documents
from worker.routing import NetworkMap

GOOD = "monitors:\n  - {name: Orders, collection: c.json, schedule: {every: 5m}}\n"


@pytest.fixture(scope="module")
def folder() -> Iterator[Path]:
    with tempfile.TemporaryDirectory() as name:
        root = Path(name)
        (root / "c.json").write_text(json.dumps({"info": {"name": "c"}, "item": []}))
        yield root


@FUZZ
@given(content=yaml_documents(json_values()))
def test_monitors_file(folder: Path, content: bytes) -> None:
    file_read_or_refused(folder, "monitors.yaml", content, read_monitors_file)


@FUZZ
@given(content=yaml_documents(json_values()))
def test_networks_file(folder: Path, content: bytes) -> None:
    file_read_or_refused(folder, "networks.yaml", content, NetworkMap.load, egress_sections)


@FUZZ
@given(content=yaml_documents(json_values()))
def test_a_bad_edit_keeps_the_last_good_monitors(folder: Path, content: bytes) -> None:
    path = folder / "watched.yaml"
    path.write_text(GOOD)
    source = LocalMonitorSource(path)
    path.write_bytes(content)
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # seen as changed
    monitors = source.monitors()
    if source.last_error is None:
        return  # the new content is valid
    assert "\n" not in source.last_error and str(path) in source.last_error
    assert [monitor.name for monitor in monitors] == ["Orders"]
