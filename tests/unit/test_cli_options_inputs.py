"""``pmrunner run`` inputs and exports: variable overrides, loaded files, exported files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pmrunner import __version__
from pmrunner.cli import (
    RunInputs,
    apply_overrides,
    input_secrets,
    load_inputs,
    parse_run_options,
    variable_export,
    write_exports,
)
from pmrunner.errors import InputError
from runtime.loading import VariableFile, load_collection
from runtime.results import Run
from tests.unit.cli_options_helpers import invoke, single_error_line, write

# --- exports ---------------------------------------------------------------------------


def test_variable_export_has_postmans_shape() -> None:
    values = [
        {"key": "token", "value": "t", "type": "secret", "enabled": True},
        {"key": "off", "value": 1, "enabled": False},
        "not a variable",
    ]
    document = variable_export("globals", None, values)  # type: ignore[list-item]
    assert document["name"] == "globals"
    assert document["_postman_variable_scope"] == "globals"
    assert document["_postman_exported_using"] == f"pmrunner/{__version__}"
    assert document["_postman_exported_at"].endswith("Z")
    assert len(document["id"]) == 36
    assert document["values"] == [
        {"key": "token", "value": "t", "type": "secret", "enabled": True},
        {"key": "off", "value": 1, "type": "default", "enabled": False},
    ]


def test_variable_export_keeps_the_source_id_and_name() -> None:
    source = VariableFile(name="Staging", id="env-1", values=[])
    document = variable_export("environment", source, [{"key": "a", "value": "b"}])
    assert (document["id"], document["name"]) == ("env-1", "Staging")
    assert document["_postman_variable_scope"] == "environment"


def test_exports_are_written_with_real_values(tmp_path: Path) -> None:
    settings = parse_run_options(
        [
            "c.json",
            *("--export-environment", str(tmp_path / "a" / "env.json")),
            *("--export-globals", str(tmp_path / "b" / "globals.json")),
        ]
    )
    collection = load_collection({"info": {"name": "C"}, "item": []})
    environment = VariableFile(
        name="Staging", id="env-1", values=[{"key": "token", "value": "old", "type": "secret"}]
    )
    inputs = RunInputs(collection, environment, None, None)
    run = Run(
        collection_id="c",
        collection_name="C",
        environment=[
            {"key": "token", "value": "real", "type": "any", "enabled": True},
            {"key": "new", "value": "set by a script", "type": "any"},
        ],
        globals=[{"key": "g", "value": "1", "type": "default", "enabled": True}],
    )
    write_exports(settings, inputs, run)
    exported = json.loads((tmp_path / "a" / "env.json").read_text(encoding="utf-8"))
    assert exported["id"] == "env-1"
    assert exported["values"] == [
        {"key": "token", "value": "real", "type": "secret", "enabled": True},
        {"key": "new", "value": "set by a script", "type": "any", "enabled": True},
    ]
    globals_ = json.loads((tmp_path / "b" / "globals.json").read_text(encoding="utf-8"))
    assert globals_["_postman_variable_scope"] == "globals"
    assert globals_["values"][0]["key"] == "g"


def test_an_export_that_cannot_be_written_names_the_option(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    settings = parse_run_options(["c.json", "--export-globals", str(blocker / "g.json")])
    inputs = RunInputs(load_collection({"info": {"name": "C"}, "item": []}), None, None, None)
    with pytest.raises(InputError, match="--export-globals: cannot write"):
        write_exports(settings, inputs, Run(collection_id="c", collection_name="C"))


# --- variables and inputs --------------------------------------------------------------


def test_env_var_and_global_var_pairs() -> None:
    settings = parse_run_options(
        ["c", "--env-var", "a=b=c", "--env-var", "empty=", "--global-var", "g=1"]
    )
    assert settings.env_vars == (("a", "b=c"), ("empty", ""))
    assert settings.global_vars == (("g", "1"),)


def test_a_bad_env_var_is_one_error_line() -> None:
    line = single_error_line(invoke("run", "c.json", "--env-var", "novalue"))
    assert line == "error: --env-var expects key=value, got 'novalue'"


def test_overrides_replace_values_and_add_new_ones() -> None:
    loaded = VariableFile(
        name="Local",
        id="e",
        values=[{"key": "host", "value": "old", "enabled": False, "type": "default"}],
    )
    result = apply_overrides(loaded, [("host", "127.0.0.1"), ("port", "80")])
    assert result is loaded
    assert loaded.values == [
        {"key": "host", "value": "127.0.0.1", "enabled": True, "type": "default"},
        {"key": "port", "value": "80", "type": "default", "enabled": True},
    ]
    created = apply_overrides(None, [("a", "1")])
    assert created is not None
    assert created.values == [{"key": "a", "value": "1", "type": "default", "enabled": True}]
    assert apply_overrides(None, []) is None


def test_load_inputs_reads_files_and_applies_overrides(tmp_path: Path) -> None:
    collection = write(tmp_path / "c.json", {"info": {"name": "Files"}, "item": []})
    environment = write(
        tmp_path / "e.json",
        {"name": "Env", "values": [{"key": "k", "value": "v", "type": "secret"}]},
    )
    globals_ = write(tmp_path / "g.json", {"values": []})
    data = tmp_path / "d.csv"
    data.write_text("a,b\n1,2\n", encoding="utf-8")
    settings = parse_run_options(
        [
            str(collection),
            *("-e", str(environment), "-g", str(globals_), "-d", str(data)),
            *("--global-var", "x=y", "--ssl-client-passphrase", "pw"),
        ]
    )
    inputs = load_inputs(settings)
    assert inputs.collection.name == "Files"
    assert inputs.environment is not None
    assert inputs.environment.name == "Env"
    assert inputs.globals is not None
    assert inputs.globals.values == [{"key": "x", "value": "y", "type": "default", "enabled": True}]
    assert inputs.iteration_data is not None
    assert len(inputs.iteration_data) == 1
    assert input_secrets(settings, inputs) == {"v", "pw"}


def test_a_missing_collection_is_one_error_line(tmp_path: Path) -> None:
    line = single_error_line(invoke("run", str(tmp_path / "missing.json")))
    assert "missing.json" in line


def test_a_malformed_environment_is_one_error_line(tmp_path: Path) -> None:
    collection = write(tmp_path / "c.json", {"info": {"name": "C"}, "item": []})
    environment = tmp_path / "env.json"
    environment.write_text("{not json", encoding="utf-8")
    line = single_error_line(invoke("run", str(collection), "-e", str(environment)))
    assert "env.json" in line
