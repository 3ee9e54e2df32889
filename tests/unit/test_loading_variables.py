"""Reading environments and globals from files, and variables given on the command line."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from pmrunner.errors import DataFileError, InputError
from runtime.loading import (
    VariableFile,
    load_environment,
    load_globals,
    parse_key_value,
    variable_file_from_json,
)
from tests.unit.loading_helpers import write_json

# --- environments and globals --------------------------------------------------------------

ENVIRONMENT: dict[str, Any] = {
    "id": "env-1",
    "name": "Staging",
    "values": [
        {"key": "host", "value": "staging.test", "type": "default", "enabled": True},
        {"key": "token", "value": "t0k", "type": "secret", "enabled": True},
        {"key": "old", "value": "x", "type": "default", "enabled": False},
    ],
    "_postman_variable_scope": "environment",
}


@pytest.mark.parametrize(
    "content",
    [ENVIRONMENT, {"environment": ENVIRONMENT}],
    ids=["export", "api-wrapper"],
)
def test_load_environment_keeps_entries_with_type_and_enabled(
    tmp_path: Path, content: dict[str, Any]
) -> None:
    loaded = load_environment(write_json(tmp_path / "env.json", content))
    assert loaded == VariableFile(name="Staging", id="env-1", values=ENVIRONMENT["values"])


def test_load_globals_reads_exports_and_wrappers(tmp_path: Path) -> None:
    exported = {
        "id": "g-1",
        "name": "My Workspace Globals",
        "values": [{"key": "g", "value": 1, "type": "default", "enabled": True}],
        "_postman_variable_scope": "globals",
    }
    assert load_globals(write_json(tmp_path / "g.json", exported)).values == exported["values"]
    wrapped = load_globals(write_json(tmp_path / "w.json", {"globals": exported}))
    assert wrapped.name == "My Workspace Globals"
    bare = load_globals(write_json(tmp_path / "b.json", exported["values"]))
    assert bare == VariableFile(name=None, id=None, values=exported["values"])


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ({"name": "x"}, "no 'values' list"),
        ({"values": {"a": 1}}, "'values' must be a list"),
        ({"values": [{"key": "a"}, "b"]}, r"values\[1\] must be an object"),
        ({"info": {}, "item": []}, "is a collection"),
        (42, "expected a JSON object"),
    ],
)
def test_variable_file_errors_name_the_file_and_field(
    tmp_path: Path, content: Any, expected: str
) -> None:
    path = write_json(tmp_path / "env.json", content)
    with pytest.raises(DataFileError, match=expected) as caught:
        load_environment(path)
    assert str(caught.value).startswith(str(path))


def test_variable_file_from_json_labels_its_errors() -> None:
    with pytest.raises(DataFileError, match=r"^postman:env-uid: no 'values'"):
        variable_file_from_json({}, label="postman:env-uid")


# --- command-line variables ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "pair"),
    [
        ("a=b", ("a", "b")),
        ("url=http://x/?q=1&r=2", ("url", "http://x/?q=1&r=2")),
        ("e=", ("e", "")),
    ],
)
def test_parse_key_value_splits_at_the_first_equals(text: str, pair: tuple[str, str]) -> None:
    assert parse_key_value("--env-var", text) == pair


@pytest.mark.parametrize("text", ["novalue", "=value", ""])
def test_parse_key_value_errors_name_the_option(text: str) -> None:
    with pytest.raises(InputError, match="--global-var expects key=value"):
        parse_key_value("--global-var", text)
