"""Reading the user's files: collections, environments, globals, iteration data.

Every problem becomes a :class:`~pmrunner.errors.CollectionFormatError` (for
collections) or :class:`~pmrunner.errors.DataFileError` (for the rest) whose
message starts with the file's path, and for JSON names the line and column.

Text files may be UTF-8 (with or without a BOM) or UTF-16 (with a BOM, or
little/big-endian without one, recognised by its NUL bytes), as editors on
Windows write them.
"""

from __future__ import annotations

import codecs
import copy
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pmrunner.errors import CollectionFormatError, DataFileError, InputError
from pmrunner.structured_input import MAX_NESTING_DEPTH, nesting_depth
from runtime.collection_upgrade import convert_v1, is_v1_collection, normalise_v20
from runtime.csv_data import parse_csv_rows
from runtime.model import JSON, Collection, parse_collection

__all__ = [
    "VariableFile",
    "load_collection",
    "load_environment",
    "load_globals",
    "load_iteration_data",
    "parse_key_value",
    "read_json",
    "row_for_iteration",
    "variable_file_from_json",
]

# --- text and JSON -------------------------------------------------------------------------


def _read_bytes(path: Path, error: type[InputError]) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise error(f"{path}: no such file") from None
    except IsADirectoryError:
        raise error(f"{path}: is a directory, not a file") from None
    except PermissionError:
        raise error(f"{path}: permission denied") from None
    except OSError as exc:
        raise error(f"{path}: cannot be read ({exc.strerror or exc})") from None


def _decode(data: bytes, path: Path, error: type[InputError], latin1_fallback: bool) -> str:
    """Bytes to text: BOMs decide; NUL bytes in the first pair betray BOM-less UTF-16."""
    encoding, start = "utf-8", 0
    if data.startswith(codecs.BOM_UTF8):
        start = len(codecs.BOM_UTF8)
    elif data.startswith(codecs.BOM_UTF16_LE):
        encoding, start = "utf-16-le", 2
    elif data.startswith(codecs.BOM_UTF16_BE):
        encoding, start = "utf-16-be", 2
    elif len(data) >= 2 and data[0] != 0 and data[1] == 0:
        encoding = "utf-16-le"
    elif len(data) >= 2 and data[0] == 0 and data[1] != 0:
        encoding = "utf-16-be"
    try:
        return data[start:].decode(encoding)
    except UnicodeDecodeError as exc:
        if latin1_fallback and encoding == "utf-8":
            return data.decode("latin-1")  # spreadsheets on Windows still write Latin-1
        raise error(
            f"{path}: not {encoding.upper()} text (bad byte at offset {exc.start + start})"
        ) from None


def _read_text(path: Path, error: type[InputError], latin1_fallback: bool = False) -> str:
    return _decode(_read_bytes(path, error), path, error, latin1_fallback)


# Integers longer than this become floats, as JavaScript reads them; Python would refuse
# to convert them (its guard against quadratic conversion time).
_MAX_INT_DIGITS = 4300


def _json_integer(text: str) -> int | float:
    return int(text) if len(text) <= _MAX_INT_DIGITS else float(text)


def _parse_json(text: str, label: str, error: type[InputError]) -> Any:
    if not text.strip():
        raise error(f"{label}: the file is empty")
    try:
        data = json.loads(text, parse_int=_json_integer)
    except json.JSONDecodeError as exc:
        raise error(
            f"{label}: invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}"
        ) from None
    except RecursionError:
        raise error(f"{label}: JSON nested deeper than {MAX_NESTING_DEPTH} levels") from None
    except ValueError as exc:
        raise error(f"{label}: invalid JSON: {exc}") from None
    if nesting_depth(data, MAX_NESTING_DEPTH) > MAX_NESTING_DEPTH:
        raise error(f"{label}: JSON nested deeper than {MAX_NESTING_DEPTH} levels")
    return data


def read_json(path: Path | str, *, error: type[InputError] = DataFileError) -> Any:
    """Read and parse one JSON file.

    Args:
        path: the file.
        error: the error class to raise (``CollectionFormatError`` for
            collections, ``DataFileError`` by default).

    Raises:
        InputError: of class ``error``, naming the file: missing, a directory,
            unreadable, empty, not UTF-8/UTF-16, or malformed (with line and
            column).
    """
    path = Path(path)
    return _parse_json(_read_text(path, error), str(path), error)


# --- collections ---------------------------------------------------------------------------


def load_collection(source: Path | str | Mapping[str, Any]) -> Collection:
    """Load a collection from a file or from parsed JSON.

    Accepts v2.1 and v2.0 collections (auth parameters given as objects become
    v2.1 lists), v1 collections (converted to v2.1), and the ``{"collection":
    {...}}`` wrapper the Postman API answers with. A mapping given as the
    source is not modified.

    Raises:
        CollectionFormatError: naming the file (or "collection" for a mapping).
    """
    if isinstance(source, Mapping):
        label, data = "collection", copy.deepcopy(dict(source))
    else:
        label = str(source)
        data = read_json(Path(source), error=CollectionFormatError)
    try:
        return parse_collection(_upgrade_collection(data))
    except CollectionFormatError as exc:
        raise CollectionFormatError(f"{label}: {exc}") from None


def _upgrade_collection(data: Any) -> JSON:
    """Unwrap the Postman API's ``{"collection": ...}`` and bring older formats to v2.1."""
    if not isinstance(data, dict):
        raise CollectionFormatError(
            f"not a Postman collection: expected a JSON object, got {_json_kind(data)}"
        )
    collection: JSON = data
    if "info" not in collection and isinstance(collection.get("collection"), dict):
        collection = collection["collection"]
    if is_v1_collection(collection):
        collection = convert_v1(collection)
    if "info" not in collection and "values" in collection:
        raise CollectionFormatError("this is an environment or globals file, not a collection")
    normalise_v20(collection)
    return collection


def _json_kind(value: Any) -> str:
    kinds = {list: "an array", str: "a string", bool: "a boolean", type(None): "null"}
    return kinds.get(type(value), "a number")


# --- environments and globals --------------------------------------------------------------


@dataclass
class VariableFile:
    """An environment or globals file: its name, id and variable entries.

    Entries keep every field Postman wrote (``key``, ``value``, ``type`` such
    as "default" or "secret", ``enabled``).
    """

    name: str | None
    id: str | None
    values: list[dict[str, Any]]


def variable_file_from_json(data: Any, *, label: str = "environment") -> VariableFile:
    """A :class:`VariableFile` from parsed JSON (a file's content or a Postman API answer).

    Accepts ``{"environment": {...}}`` / ``{"globals": {...}}`` wrappers, raw
    exports ``{"id", "name", "values": [...]}`` and a bare list of entries.

    Args:
        data: the parsed JSON.
        label: how error messages name the source (a path, usually).

    Raises:
        DataFileError: naming ``label`` and the offending field.
    """
    if isinstance(data, dict):
        for wrapper in ("environment", "globals"):
            if "values" not in data and isinstance(data.get(wrapper), dict):
                data = data[wrapper]
    if isinstance(data, list):
        data = {"values": data}
    if not isinstance(data, dict):
        raise DataFileError(f"{label}: expected a JSON object, got {_json_kind(data)}")
    values = data.get("values")
    if values is None:
        if "info" in data and "item" in data:
            raise DataFileError(f"{label}: this is a collection, not an environment or globals")
        raise DataFileError(f"{label}: no 'values' list of variables")
    if not isinstance(values, list):
        raise DataFileError(f"{label}: 'values' must be a list, got {_json_kind(values)}")
    for position, entry in enumerate(values):
        if not isinstance(entry, dict):
            raise DataFileError(f"{label}: values[{position}] must be an object")
    name, ident = data.get("name"), data.get("id") or data.get("_postman_id")
    return VariableFile(
        name=None if name is None else str(name),
        id=None if ident is None else str(ident),
        values=[dict(entry) for entry in values],
    )


def load_environment(path: Path | str) -> VariableFile:
    """Load an environment file (a Postman export or a Postman API answer)."""
    return variable_file_from_json(read_json(path), label=str(path))


def load_globals(path: Path | str) -> VariableFile:
    """Load a globals file (a Postman export or a Postman API answer)."""
    return variable_file_from_json(read_json(path), label=str(path))


# --- iteration data ------------------------------------------------------------------------


def load_iteration_data(path: Path | str) -> list[dict[str, Any]]:
    """Rows of an iteration-data file, JSON or CSV.

    ``.json`` files (or, whatever the extension, text starting with ``[`` or
    ``{``) must hold an array of objects. Other files are CSV, read as newman
    reads them (:mod:`runtime.csv_data`).

    Raises:
        DataFileError: naming the file, and the line or row at fault.
    """
    path = Path(path)
    text = _read_text(path, DataFileError, latin1_fallback=True).removeprefix("\ufeff")
    suffix = path.suffix.lower()
    if suffix == ".json" or (suffix != ".csv" and text.lstrip()[:1] in ("[", "{")):
        return _json_rows(_parse_json(text, str(path), DataFileError), str(path))
    return parse_csv_rows(text, str(path))


def _json_rows(data: Any, label: str) -> list[dict[str, Any]]:
    if not isinstance(data, list):
        raise DataFileError(f"{label}: iteration data must be an array of objects")
    for position, row in enumerate(data):
        if not isinstance(row, dict):
            raise DataFileError(f"{label}: row [{position}] must be an object")
    return data


def row_for_iteration(rows: list[dict[str, Any]], iteration: int) -> dict[str, Any]:
    """The data row of a 0-based iteration: later iterations reuse the last row.

    Args:
        rows: the rows of the data file.
        iteration: the iteration number, from 0.

    Returns:
        A copy of the row; ``{}`` when there are no rows.
    """
    if not rows:
        return {}
    return dict(rows[min(max(iteration, 0), len(rows) - 1)])


# --- command-line variables ----------------------------------------------------------------


def parse_key_value(option: str, text: str) -> tuple[str, str]:
    """Split ``key=value`` of ``--env-var`` / ``--global-var`` at the first ``=``.

    Args:
        option: the option's name, for the error message.
        text: the option's value; the value part may itself contain ``=``.

    Raises:
        InputError: no ``=``, or an empty key.
    """
    key, equals, value = text.partition("=")
    if not equals or not key:
        raise InputError(f"{option} expects key=value, got {text!r}")
    return key, value
