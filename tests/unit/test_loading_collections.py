"""Reading collections from files and mappings: v2.1, v2.0 and v1, and their errors."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from pmrunner.errors import CollectionFormatError
from runtime.loading import load_collection
from runtime.model import Item
from tests.unit.loading_helpers import write, write_json

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


def test_a_collection_without_info_runs_as_newman_runs_it(tmp_path: Path) -> None:
    data = {"item": [{"name": "ping", "request": "http://127.0.0.1:9/ping"}]}
    for info in ({}, {"info": "not an object"}):
        collection = load_collection(write_json(tmp_path / "c.json", {**data, **info}))
        assert collection.name == "Collection"
        assert [item.name for item in collection.items()] == ["ping"]


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
