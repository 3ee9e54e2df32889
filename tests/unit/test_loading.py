"""Reading collections, environments, globals and iteration data from files."""

from __future__ import annotations

import codecs
import copy
import json
from pathlib import Path
from typing import Any

import pytest

from pmrunner.errors import CollectionFormatError, DataFileError, InputError
from runtime.loading import (
    VariableFile,
    load_collection,
    load_environment,
    load_globals,
    load_iteration_data,
    parse_key_value,
    read_json,
    row_for_iteration,
    variable_file_from_json,
)
from runtime.model import Item

DOCUMENT = {"name": "Zoë", "values": [1, 2.5, True, None]}


def write(path: Path, content: str | bytes) -> Path:
    if isinstance(content, str):
        path.write_text(content, encoding="utf-8")
    else:
        path.write_bytes(content)
    return path


def write_json(path: Path, data: Any) -> Path:
    return write(path, json.dumps(data))


# --- read_json -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "encoded",
    [
        json.dumps(DOCUMENT).encode("utf-8"),
        codecs.BOM_UTF8 + json.dumps(DOCUMENT).encode("utf-8"),
        codecs.BOM_UTF16_LE + json.dumps(DOCUMENT).encode("utf-16-le"),
        codecs.BOM_UTF16_BE + json.dumps(DOCUMENT).encode("utf-16-be"),
        json.dumps(DOCUMENT).encode("utf-16-le"),
        json.dumps(DOCUMENT).encode("utf-16-be"),
        json.dumps(DOCUMENT, ensure_ascii=False).encode("utf-16-le"),
    ],
    ids=["utf8", "utf8-bom", "utf16le-bom", "utf16be-bom", "utf16le", "utf16be", "utf16le-raw"],
)
def test_read_json_accepts_utf8_and_utf16(tmp_path: Path, encoded: bytes) -> None:
    assert read_json(write(tmp_path / "doc.json", encoded)) == DOCUMENT


def test_read_json_reports_malformed_json_with_file_line_and_column(tmp_path: Path) -> None:
    path = write(tmp_path / "broken.json", '{\n  "a": 1,\n  "b": \n}\n')
    with pytest.raises(DataFileError) as caught:
        read_json(path)
    message = str(caught.value)
    assert str(path) in message
    assert "line 4, column 1" in message


@pytest.mark.parametrize(
    ("content", "expected"),
    [(b"", "empty"), (b"  \n\t ", "empty"), (b'{"a": "\xff\xfe\xfd"}', "UTF-8")],
)
def test_read_json_rejects_empty_and_undecodable_files(
    tmp_path: Path, content: bytes, expected: str
) -> None:
    path = write(tmp_path / "bad.json", content)
    with pytest.raises(DataFileError, match=expected) as caught:
        read_json(path)
    assert str(path) in str(caught.value)


def test_read_json_rejects_missing_files_and_directories(tmp_path: Path) -> None:
    with pytest.raises(DataFileError, match="no such file") as caught:
        read_json(tmp_path / "absent.json")
    assert "absent.json" in str(caught.value)
    with pytest.raises(DataFileError, match="is a directory"):
        read_json(tmp_path)


def test_read_json_raises_the_error_class_asked_for(tmp_path: Path) -> None:
    with pytest.raises(CollectionFormatError):
        read_json(tmp_path / "absent.json", error=CollectionFormatError)


# --- collections ---------------------------------------------------------------------------


def v21_collection() -> dict[str, Any]:
    return {
        "info": {
            "_postman_id": "c-1",
            "name": "Shop",
            "schema": "https://schema.getpostman.com/json/collection/v2.1.0/collection.json",
        },
        "auth": {"type": "bearer", "bearer": [{"key": "token", "value": "t", "type": "string"}]},
        "item": [
            {"name": "Orders", "item": [{"name": "List", "request": {"url": "http://x/orders"}}]},
            {"name": "Health", "request": {"method": "GET", "url": "http://x/health"}},
        ],
        "variable": [{"key": "base", "value": "http://x"}],
    }


def test_load_collection_reads_a_v21_file(tmp_path: Path) -> None:
    collection = load_collection(write_json(tmp_path / "c.json", v21_collection()))
    assert collection.id == "c-1" and collection.name == "Shop"
    assert [item.name for item in collection.items()] == ["List", "Health"]
    assert collection.variables == [{"key": "base", "value": "http://x"}]


def test_load_collection_unwraps_the_postman_api_answer(tmp_path: Path) -> None:
    path = write_json(tmp_path / "c.json", {"collection": v21_collection()})
    assert load_collection(path).name == "Shop"
    assert load_collection(str(path)).name == "Shop"


def test_load_collection_does_not_modify_a_mapping_it_is_given() -> None:
    data = v21_collection()
    data["auth"] = {"type": "basic", "basic": {"username": "u", "password": "p"}}
    snapshot = copy.deepcopy(data)
    collection = load_collection(data)
    assert data == snapshot
    assert collection.auth is not None and isinstance(collection.auth["basic"], list)


def test_v20_auth_objects_and_url_variable_ids_become_v21(tmp_path: Path) -> None:
    data = v21_collection()
    data["info"]["schema"] = "https://schema.getpostman.com/json/collection/v2.0.0/collection.json"
    data["auth"] = {"type": "basic", "basic": {"username": "u", "password": "p", "flag": True}}
    data["item"][0]["auth"] = {"type": "apikey", "apikey": {"key": "X-Key", "value": "k"}}
    data["item"][1]["request"]["auth"] = {"type": "bearer", "bearer": {"token": "tok"}}
    data["item"][1]["request"]["url"] = {
        "raw": "http://x/:id",
        "host": ["x"],
        "path": [":id"],
        "variable": [{"id": "id", "value": "7"}],
    }
    collection = load_collection(write_json(tmp_path / "c.json", data))
    assert collection.auth == {
        "type": "basic",
        "basic": [
            {"key": "username", "value": "u", "type": "string"},
            {"key": "password", "value": "p", "type": "string"},
            {"key": "flag", "value": True, "type": "boolean"},
        ],
    }
    orders = next(collection.folders())
    assert orders.auth == {
        "type": "apikey",
        "apikey": [
            {"key": "key", "value": "X-Key", "type": "string"},
            {"key": "value", "value": "k", "type": "string"},
        ],
    }
    health = collection.find("Health")
    assert health is not None
    assert health.request["auth"]["bearer"] == [{"key": "token", "value": "tok", "type": "string"}]
    assert health.request["url"]["variable"] == [{"key": "id", "value": "7"}]


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ([1, 2], "expected a JSON object, got an array"),
        ("text", "expected a JSON object, got a string"),
        ({"values": []}, "environment or globals file"),
        ({"name": "no info"}, "no 'info' object"),
        ({"info": {"name": "x"}, "item": [{"name": "lonely"}]}, "item 'lonely' has no request"),
        ({"requests": "nope", "order": []}, "'requests' must be a list"),
    ],
)
def test_load_collection_errors_name_the_file(tmp_path: Path, data: Any, expected: str) -> None:
    path = write_json(tmp_path / "bad-collection.json", data)
    with pytest.raises(CollectionFormatError) as caught:
        load_collection(path)
    message = str(caught.value)
    assert message.startswith(str(path)), message
    assert expected in message


def test_load_collection_reports_malformed_json_as_a_collection_error(tmp_path: Path) -> None:
    path = write(tmp_path / "c.json", '{"info": {,}}')
    with pytest.raises(CollectionFormatError, match=r"line 1, column 11"):
        load_collection(path)


# --- v1 collections ------------------------------------------------------------------------


def v1_collection() -> dict[str, Any]:
    return {
        "id": "v1-col",
        "name": "Legacy",
        "description": "old export",
        "order": ["r-root"],
        "folders_order": ["f-outer"],
        "folders": [
            {"id": "f-inner", "name": "Inner", "order": ["r-form"], "folders_order": []},
            {
                "id": "f-outer",
                "name": "Outer",
                "order": ["r-json"],
                "folders_order": ["f-inner"],
                "currentHelper": "bearerAuth",
                "helperAttributes": {"id": "bearer", "token": "folder-token"},
            },
        ],
        "requests": [
            {
                "id": "r-json",
                "name": "Create",
                "method": "post",
                "url": "https://{{host}}:8443/users/:id?verbose=1&flag",
                "pathVariables": {"id": "42"},
                "headers": "Content-Type: application/json\n// X-Off: 1\nX-Trace: a:b\n",
                "dataMode": "raw",
                "rawModeData": '{"name": "x"}',
                "preRequestScript": "pm.variables.set('a', 1);\nconsole.log('pre');",
                "tests": "pm.test('ok', () => {});",
                "currentHelper": "basicAuth",
                "helperAttributes": {
                    "id": "basic",
                    "username": "alice",
                    "password": "s3cret",
                    "saveToRequest": True,
                },
            },
            {
                "id": "r-form",
                "name": "Upload",
                "method": "POST",
                "url": "http://x/upload",
                "headerData": [{"key": "Accept", "value": "*/*", "enabled": False}],
                "headers": "Accept: */*\nX-Extra: yes",
                "dataMode": "params",
                "data": [
                    {"key": "file", "value": "photo.png", "type": "file"},
                    {"key": "note", "value": "hi", "type": "text", "enabled": False},
                    {"value": "keyless"},
                ],
            },
            {
                "id": "r-root",
                "name": "Ping",
                "method": "GET",
                "url": "http://x/ping",
                "dataMode": "urlencoded",
                "data": [{"key": "a", "value": "1", "type": "text"}],
            },
            {"id": "r-orphan", "name": "Never listed", "url": "http://x/none"},
        ],
        "variables": [{"key": "host", "value": "api.test"}],
        "events": [{"listen": "test", "script": {"exec": ["// collection-level test"]}}],
    }


def items_by_name(items: list[Item]) -> dict[str, Item]:
    return {item.name: item for item in items}


def test_v1_collections_are_converted_in_postman_order(tmp_path: Path) -> None:
    collection = load_collection(write_json(tmp_path / "v1.json", v1_collection()))
    assert collection.id == "v1-col" and collection.name == "Legacy"
    assert "v2.1.0" in collection.schema
    items = list(collection.items())
    assert [(item.path, item.name) for item in items] == [
        (("Outer", "Inner"), "Upload"),
        (("Outer",), "Create"),
        ((), "Ping"),
    ]
    assert collection.variables == [{"key": "host", "value": "api.test"}]
    assert [script.source for script in collection.scripts("test")] == ["// collection-level test"]


def test_v1_requests_keep_method_url_headers_body_scripts_and_auth(tmp_path: Path) -> None:
    collection = load_collection(write_json(tmp_path / "v1.json", v1_collection()))
    create = items_by_name(list(collection.items()))["Create"]
    request = create.request
    assert request["method"] == "POST"
    assert request["header"] == [
        {"key": "Content-Type", "value": "application/json"},
        {"key": "X-Off", "value": "1", "disabled": True},
        {"key": "X-Trace", "value": "a:b"},
    ]
    assert request["body"] == {"mode": "raw", "raw": '{"name": "x"}'}
    assert request["auth"] == {
        "type": "basic",
        "basic": [
            {"key": "username", "value": "alice", "type": "string"},
            {"key": "password", "value": "s3cret", "type": "string"},
        ],
    }
    url = request["url"]
    assert url["raw"] == "https://{{host}}:8443/users/:id?verbose=1&flag"
    assert url["protocol"] == "https" and url["port"] == "8443"
    assert url["host"] == ["{{host}}"] and url["path"] == ["users", ":id"]
    assert url["query"] == [{"key": "verbose", "value": "1"}, {"key": "flag", "value": None}]
    assert url["variable"] == [{"key": "id", "value": "42"}]
    assert [s.source for s in create.scripts("prerequest")] == [
        "pm.variables.set('a', 1);\nconsole.log('pre');"
    ]
    assert [s.source for s in create.scripts("test")] == ["pm.test('ok', () => {});"]


def test_v1_folder_auth_is_inherited_and_form_bodies_convert(tmp_path: Path) -> None:
    collection = load_collection(write_json(tmp_path / "v1.json", v1_collection()))
    by_name = items_by_name(list(collection.items()))
    upload = by_name["Upload"]
    assert upload.inherited_auth() == {
        "type": "bearer",
        "bearer": [{"key": "token", "value": "folder-token", "type": "string"}],
    }
    assert upload.request["header"] == [
        {"key": "Accept", "value": "*/*", "disabled": True},
        {"key": "X-Extra", "value": "yes"},
    ]
    assert upload.request["body"] == {
        "mode": "formdata",
        "formdata": [
            {"key": "file", "type": "file", "src": "photo.png"},
            {"key": "note", "value": "hi", "type": "text", "disabled": True},
        ],
    }
    ping = by_name["Ping"]
    assert ping.request["url"] == "http://x/ping"
    assert ping.request["body"] == {
        "mode": "urlencoded",
        "urlencoded": [{"key": "a", "value": "1", "type": "text"}],
    }


def test_v1_folder_cycles_do_not_loop(tmp_path: Path) -> None:
    data = {
        "id": "c",
        "name": "Cycle",
        "order": [],
        "folders_order": ["a"],
        "folders": [
            {"id": "a", "name": "A", "folders_order": ["b"], "order": ["r"]},
            {"id": "b", "name": "B", "folders_order": ["b"], "order": ["s"]},
        ],
        "requests": [
            {"id": "r", "name": "R", "url": "http://x/r"},
            {"id": "s", "name": "S", "url": "http://x/s"},
        ],
    }
    collection = load_collection(write_json(tmp_path / "cycle.json", data))
    assert [(item.path, item.name) for item in collection.items()] == [
        (("A", "B"), "S"),
        (("A",), "R"),
    ]


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


# --- iteration data ------------------------------------------------------------------------


def test_json_iteration_data_is_an_array_of_objects(tmp_path: Path) -> None:
    rows = [{"user": "a", "n": 1}, {"user": "b", "n": 2.5}]
    assert load_iteration_data(write_json(tmp_path / "data.json", rows)) == rows


@pytest.mark.parametrize(
    ("content", "expected"),
    [({"user": "a"}, "must be an array of objects"), ([{"a": 1}, 2], r"row \[1\]")],
)
def test_json_iteration_data_errors(tmp_path: Path, content: Any, expected: str) -> None:
    path = write_json(tmp_path / "data.json", content)
    with pytest.raises(DataFileError, match=expected) as caught:
        load_iteration_data(path)
    assert str(path) in str(caught.value)


def test_csv_iteration_data_casts_unquoted_numbers_like_newman(tmp_path: Path) -> None:
    content = (
        "name,count,price,code,zip,quoted,empty,sci,hex,big,neg\n"
        'alice,3,1.5,007,"01234","42",,1e3,0x1A,123456789012345678901,-5\n'
        'bob , 1.0 ,.5,abc,  "x" ,"",  ,2.50,-0,+7,-0.25\n'
    )
    rows = load_iteration_data(write(tmp_path / "data.csv", content))
    assert rows == [
        {
            "name": "alice",
            "count": 3,
            "price": 1.5,
            "code": 7,
            "zip": "01234",
            "quoted": "42",
            "empty": "",
            "sci": 1000,
            "hex": "0x1A",
            "big": 123456789012345678901,
            "neg": -5,
        },
        {
            "name": "bob",
            "count": 1,
            "price": 0.5,
            "code": "abc",
            "zip": "x",
            "quoted": "",
            "empty": "",
            "sci": 2.5,
            "hex": 0,
            "big": 7,
            "neg": -0.25,
        },
    ]
    assert type(rows[0]["count"]) is int and type(rows[0]["price"]) is float


def test_csv_quoted_fields_hold_commas_newlines_and_escaped_quotes(tmp_path: Path) -> None:
    content = (
        'id,text\r\n1,"a, b"\r\n2,"line one\r\nline two"\r\n'
        '3,"say \\"hi\\" and ""bye"""\r\n4,"back\\\\slash \\n kept"\r\n5,C:\\path\r\n'
    )
    rows = load_iteration_data(write(tmp_path / "data.csv", content))
    assert [row["text"] for row in rows] == [
        "a, b",
        "line one\r\nline two",
        'say "hi" and "bye"',
        "back\\slash \\n kept",
        "C:\\path",
    ]


def test_csv_bom_and_blank_lines_are_ignored(tmp_path: Path) -> None:
    content = codecs.BOM_UTF8 + b"user,pass\nu1,p1\n\nu2,p2\n\n\n"
    rows = load_iteration_data(write(tmp_path / "data.csv", content))
    assert rows == [{"user": "u1", "pass": "p1"}, {"user": "u2", "pass": "p2"}]


def test_csv_in_utf16_and_latin1_is_decoded(tmp_path: Path) -> None:
    utf16 = codecs.BOM_UTF16_LE + "name\nZoë\n".encode("utf-16-le")
    assert load_iteration_data(write(tmp_path / "u16.csv", utf16)) == [{"name": "Zoë"}]
    latin1 = "name\nZoë\n".encode("latin-1")
    assert load_iteration_data(write(tmp_path / "l1.csv", latin1)) == [{"name": "Zoë"}]


def test_csv_with_only_a_header_or_nothing_has_no_rows(tmp_path: Path) -> None:
    assert load_iteration_data(write(tmp_path / "h.csv", "a,b\n")) == []
    assert load_iteration_data(write(tmp_path / "e.csv", "\n\n")) == []


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("a,b\n1,2\n3\n", "line 3 has 1 fields, the header has 2"),
        ('a,b\n1,"open\n2,3\n', "line 2: a quoted field is not closed"),
        ('a,b\n"x"y,2\n', "line 2: unexpected 'y' after a quote"),
    ],
)
def test_csv_errors_name_the_file_and_line(tmp_path: Path, content: str, expected: str) -> None:
    path = write(tmp_path / "data.csv", content)
    with pytest.raises(DataFileError, match=expected) as caught:
        load_iteration_data(path)
    assert str(caught.value).startswith(str(path))


def test_the_format_is_sniffed_when_the_extension_says_nothing(tmp_path: Path) -> None:
    assert load_iteration_data(write(tmp_path / "rows.txt", '[{"a": 1}]')) == [{"a": 1}]
    assert load_iteration_data(write(tmp_path / "rows.dat", "a\n1\n")) == [{"a": 1}]


def test_row_for_iteration_reuses_the_last_row() -> None:
    rows = [{"n": 1}, {"n": 2}]
    assert [row_for_iteration(rows, i) for i in range(4)] == [
        {"n": 1},
        {"n": 2},
        {"n": 2},
        {"n": 2},
    ]
    assert row_for_iteration([], 3) == {}
    row_for_iteration(rows, 0)["n"] = 99
    assert rows[0] == {"n": 1}


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
