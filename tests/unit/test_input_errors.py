"""Inputs that used to crash the loaders: each is now read or refused in one line."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from pmrunner.errors import CollectionFormatError, ConfigurationError, DataFileError
from runtime.loading import load_collection, load_environment, load_iteration_data
from scheduler.local_source import LocalMonitorSource, read_monitors_file
from scheduler.secrets import SecretOverrides
from tests.unit.loading_helpers import write

HUGE = "9" * 5000


def test_an_integer_of_5000_digits_is_read_as_javascript_reads_it(tmp_path: Path) -> None:
    path = write(tmp_path / "env.json", '{"values": [{"key": "n", "value": ' + HUGE + "}]}")
    assert load_environment(path).values[0]["value"] == float("inf")
    collection = write(
        tmp_path / "c.json", '{"info": {"name": "c"}, "item": [], "id": ' + HUGE + "}"
    )
    assert load_collection(collection).name == "c"


def test_a_v1_collection_whose_order_is_not_a_list_is_read(tmp_path: Path) -> None:
    v1 = {"id": "c", "name": "v1", "order": True, "requests": [{"id": "r", "url": "http://x"}]}
    assert list(load_collection(write(tmp_path / "c.json", json.dumps(v1))).items()) == []


@pytest.mark.parametrize("behavior", ["strict", True, [1], 3])
def test_protocol_profile_behavior_that_is_not_an_object_is_ignored(
    tmp_path: Path, behavior: object
) -> None:
    data = {
        "info": {"name": "c"},
        "protocolProfileBehavior": behavior,
        "item": [{"name": "r", "request": "http://x", "protocolProfileBehavior": behavior}],
    }
    collection = load_collection(write(tmp_path / "c.json", json.dumps(data)))
    assert [item.effective_behavior() for item in collection.items()] == [{}]


@pytest.mark.parametrize(
    ("content", "error", "expected"),
    [
        ("[" * 300 + "]" * 300, CollectionFormatError, "nested deeper than 256 levels"),
        ("[" * 5000 + "]" * 5000, CollectionFormatError, "nested deeper than 256 levels"),
    ],
)
def test_deep_nesting_is_refused(
    tmp_path: Path, content: str, error: type[Exception], expected: str
) -> None:
    path = write(tmp_path / "c.json", content)
    with pytest.raises(error, match=expected):
        load_collection(path)
    with pytest.raises(DataFileError, match=expected):
        load_iteration_data(write(tmp_path / "d.json", content))


MONITORS = "monitors:\n  - {name: Orders, collection: c.json, schedule: {every: 5m}}\n"


def test_a_monitors_file_with_a_list_as_a_key_keeps_the_last_good_monitors(
    tmp_path: Path,
) -> None:
    write(tmp_path / "c.json", json.dumps({"info": {"name": "c"}, "item": []}))
    path = write(tmp_path / "monitors.yaml", MONITORS)
    source = LocalMonitorSource(path)
    write(path, "monitors:\n  - ? [name]\n    : x\n")
    os.utime(path, ns=(0, path.stat().st_mtime_ns + 10**9))
    assert [monitor.name for monitor in source.monitors()] == ["Orders"]
    assert source.last_error is not None
    assert "a list or mapping cannot be a key" in source.last_error
    assert "\n" not in source.last_error


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("a: &x [*x]\n", "recursive node|an alias contains itself"),
        ("[" * 5000 + "]" * 5000, "not valid YAML"),
        ("every: " + HUGE + "\n", "not valid YAML"),
    ],
)
def test_yaml_configuration_errors_are_one_line(
    tmp_path: Path, content: str, expected: str
) -> None:
    path = write(tmp_path / "monitors.yaml", content)
    with pytest.raises(ConfigurationError, match=expected) as caught:
        read_monitors_file(path)
    assert "\n" not in str(caught.value) and str(path) in str(caught.value)
    with pytest.raises(ConfigurationError, match=expected):
        SecretOverrides.load(path, {})
