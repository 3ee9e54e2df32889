"""Property-based tests: every loader turns any file into a result or one clear error."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given

from runtime.loading import load_collection, load_environment, load_globals, load_iteration_data
from runtime.model import Collection
from scheduler.secrets import SecretOverrides
from tests.fuzz.checks import FUZZ, file_read_or_refused
from tests.fuzz.strategies import (
    collections,
    csv_documents,
    json_documents,
    json_values,
    variable_files,
    yaml_documents,
)


@pytest.fixture(scope="module")
def folder() -> Iterator[Path]:
    with tempfile.TemporaryDirectory() as name:
        yield Path(name)


def _use(collection: Collection) -> None:
    """What a run does with a loaded collection before it sends anything."""
    for item in collection.items():
        item.effective_behavior()
        item.inherited_auth()
        item.script_chain("prerequest")
        item.script_chain("test")
        item.effective_network()
        assert isinstance(item.request, dict)
    list(collection.folders())
    collection.select([])


@FUZZ
@given(content=json_documents(collections()))
def test_collections(folder: Path, content: bytes) -> None:
    [collection] = file_read_or_refused(folder, "c.json", content, load_collection)
    if collection is not None:
        _use(collection)


@FUZZ
@given(content=json_documents(variable_files()))
def test_environments_and_globals(folder: Path, content: bytes) -> None:
    file_read_or_refused(folder, "env.json", content, load_environment, load_globals)


@FUZZ
@given(content=csv_documents())
def test_csv_iteration_data(folder: Path, content: bytes) -> None:
    file_read_or_refused(folder, "data.csv", content, load_iteration_data)


@FUZZ
@given(content=json_documents(json_values()))
def test_json_iteration_data(folder: Path, content: bytes) -> None:
    file_read_or_refused(folder, "data.json", content, load_iteration_data)


@FUZZ
@given(content=yaml_documents(json_values()))
def test_secrets_file(folder: Path, content: bytes) -> None:
    [overrides] = file_read_or_refused(
        folder, "secrets.yaml", content, lambda path: SecretOverrides.load(path, {})
    )
    if overrides is not None:
        overrides.for_monitor("orders")
