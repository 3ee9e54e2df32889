"""Tests for runtime.request_builder: body modes and body pruning.

Body modes are also checked on the server side: the request goes through the
real HTTP client to a loopback echo server, which reports what arrived.
"""

from __future__ import annotations

import json
from email.message import Message
from email.parser import BytesParser
from email.policy import HTTP
from pathlib import Path
from typing import Any

import pytest

from pmrunner.errors import RequestError
from runtime.http_client import HttpClient
from runtime.request_builder import build_request
from tests.servers import LoopbackServer, echo_json, header_values

# The *_fixture names are fixtures: pytest finds them under the names their decorators give.
from tests.unit.request_builder_helpers import (  # noqa: F401
    client_fixture,
    resolve,
    send_and_echo,
)

pytest_plugins = ("tests.servers",)
pytestmark = pytest.mark.usefixtures("no_proxy_env")


def multipart_parts(echoed: dict[str, Any]) -> list[Message]:
    content_type = header_values(echoed, "Content-Type")[0]
    document = f"Content-Type: {content_type}\r\n\r\n".encode() + echoed["body"]
    message = BytesParser(policy=HTTP).parsebytes(document)
    assert message.is_multipart()
    return list(message.iter_parts())


# ------------------------------------------------------------------ body modes


@pytest.mark.parametrize(
    ("language", "content_type"),
    [
        ("json", "application/json"),
        ("javascript", "application/javascript"),
        ("xml", "application/xml"),
        ("html", "text/html"),
        ("text", "text/plain"),
        (None, "text/plain"),
    ],
)
def test_raw_body_content_type_follows_language(language: str | None, content_type: str) -> None:
    body: dict[str, Any] = {"mode": "raw", "raw": "{{name}}"}
    if language:
        body["options"] = {"raw": {"language": language}}
    request = build_request({"url": "h.test", "method": "POST", "body": body}, resolve)
    assert request.body == b"Ada Lovelace"
    assert request.body_mode == "raw"
    assert request.header("Content-Type") == content_type


def test_raw_body_keeps_the_users_content_type(
    client: HttpClient, http_server: LoopbackServer
) -> None:
    echoed = send_and_echo(
        client,
        http_server,
        {
            "method": "PUT",
            "header": [{"key": "content-type", "value": "application/vnd.api+json"}],
            "body": {
                "mode": "raw",
                "raw": '{"id": {{id}}}',
                "options": {"raw": {"language": "json"}},
            },
        },
    )
    assert echoed["method"] == "PUT"
    assert echoed["body"] == b'{"id": 42}'
    assert header_values(echoed, "Content-Type") == ["application/vnd.api+json"]
    assert header_values(echoed, "Content-Length") == ["10"]


def test_urlencoded_body_arrives_encoded(client: HttpClient, http_server: LoopbackServer) -> None:
    echoed = send_and_echo(
        client,
        http_server,
        {
            "method": "POST",
            "body": {
                "mode": "urlencoded",
                "urlencoded": [
                    {"key": "name", "value": "{{name}}"},
                    {"key": "skip", "value": "x", "disabled": True},
                    {"key": "sym", "value": "a&b=c+d/é!"},
                    {"key": "name", "value": "again"},
                ],
            },
        },
    )
    assert echoed["body"] == b"name=Ada%20Lovelace&sym=a%26b%3Dc%2Bd%2F%C3%A9%21&name=again"
    assert header_values(echoed, "Content-Type") == ["application/x-www-form-urlencoded"]


def test_formdata_body_arrives_as_multipart(
    client: HttpClient, http_server: LoopbackServer, tmp_path: Path
) -> None:
    (tmp_path / "notes.txt").write_text("plain notes")
    (tmp_path / "data.json").write_text('{"k": 1}')
    (tmp_path / "blob.bin").write_bytes(b"\x00\x01\x02")
    formdata = [
        {"key": "who", "value": "{{name}}", "type": "text"},
        {"key": "meta", "value": '{"a":1}', "type": "text", "contentType": "application/json"},
        {"key": "off", "value": "x", "type": "text", "disabled": True},
        {"key": "doc", "type": "file", "src": "notes.txt"},
        {"key": "many", "type": "file", "src": [str(tmp_path / "data.json"), "blob.bin"]},
        {"key": "typed", "type": "file", "src": "blob.bin", "contentType": "image/png"},
        {"key": "empty", "type": "file", "src": None},
    ]
    request = build_request(
        {
            "url": http_server.url("/echo"),
            "method": "POST",
            "body": {"mode": "formdata", "formdata": formdata},
        },
        resolve,
        working_dir=tmp_path,
    )
    assert request.body_mode == "formdata"
    echoed = echo_json(client.send(request).body)
    parts = multipart_parts(echoed)
    summary = [
        (
            part.get_param("name", header="content-disposition"),
            part.get_filename(),
            part.get_content_type(),
            part.get_payload(decode=True),
        )
        for part in parts
    ]
    assert summary == [
        ("who", None, "text/plain", b"Ada Lovelace"),
        ("meta", None, "application/json", b'{"a":1}'),
        ("doc", "notes.txt", "text/plain", b"plain notes"),
        ("many", "data.json", "application/json", b'{"k": 1}'),
        ("many", "blob.bin", "application/octet-stream", b"\x00\x01\x02"),
        ("typed", "blob.bin", "image/png", b"\x00\x01\x02"),
        ("empty", "", "application/octet-stream", b""),
    ]
    assert "Content-Type" not in parts[0]  # text parts carry no type unless one is set


def test_formdata_user_content_type_gets_the_boundary() -> None:
    request = build_request(
        {
            "url": "h.test",
            "method": "POST",
            "header": [{"key": "Content-Type", "value": "multipart/form-data"}],
            "body": {"mode": "formdata", "formdata": [{"key": "a", "value": "1"}]},
        },
        resolve,
    )
    content_type = request.header("Content-Type") or ""
    boundary = content_type.partition("boundary=")[2]
    assert boundary and f"--{boundary}".encode() in (request.body or b"")


def test_file_body_arrives_as_is(
    client: HttpClient, http_server: LoopbackServer, tmp_path: Path
) -> None:
    payload = bytes(range(256))
    (tmp_path / "payload.bin").write_bytes(payload)
    request = build_request(
        {
            "url": http_server.url("/echo"),
            "method": "POST",
            "body": {"mode": "file", "file": {"src": "payload.bin"}},
        },
        resolve,
        working_dir=tmp_path,
    )
    assert request.body_mode == "file"
    echoed = echo_json(client.send(request).body)
    assert echoed["body"] == payload
    assert header_values(echoed, "Content-Length") == ["256"]


def test_graphql_body_arrives_as_json(client: HttpClient, http_server: LoopbackServer) -> None:
    echoed = send_and_echo(
        client,
        http_server,
        {
            "method": "POST",
            "body": {
                "mode": "graphql",
                "graphql": {
                    "query": "query { user(id: {{id}}) { name } }",
                    "variables": '{"n": "{{name}}"}',
                },
            },
        },
    )
    assert json.loads(echoed["body"]) == {
        "query": "query { user(id: 42) { name } }",
        "variables": {"n": "Ada Lovelace"},
    }
    assert header_values(echoed, "Content-Type") == ["application/json"]


@pytest.mark.parametrize("variables", ["", "{not json", None])
def test_graphql_variables_that_do_not_parse_become_empty(variables: str | None) -> None:
    body = {"mode": "graphql", "graphql": {"query": "{ a }", "variables": variables}}
    request = build_request({"url": "h.test", "method": "POST", "body": body}, resolve)
    assert json.loads(request.body or b"") == {"query": "{ a }", "variables": {}}


@pytest.mark.parametrize(
    "body",
    [
        {"mode": "raw", "raw": "x", "disabled": True},
        {"mode": "raw", "raw": ""},
        {"mode": "urlencoded", "urlencoded": [{"key": "a", "value": "1", "disabled": True}]},
        {"mode": "unknown-mode", "raw": "x"},
        {"mode": "file", "file": {}},
    ],
)
def test_bodies_that_send_nothing(body: dict[str, Any]) -> None:
    request = build_request({"url": "h.test", "method": "POST", "body": body}, resolve)
    assert request.body is None and request.body_mode is None
    assert request.header("Content-Length") is None and request.header("Content-Type") is None


def test_missing_file_is_a_request_error_naming_the_file(tmp_path: Path) -> None:
    body = {"mode": "file", "file": {"src": "nowhere/missing.bin"}}
    with pytest.raises(RequestError, match=r"missing\.bin"):
        build_request(
            {"url": "h.test", "method": "POST", "body": body}, resolve, working_dir=tmp_path
        )
    formdata = {"mode": "formdata", "formdata": [{"key": "f", "type": "file", "src": "gone.txt"}]}
    with pytest.raises(RequestError, match=r"form field `f`.*gone\.txt"):
        build_request(
            {"url": "h.test", "method": "POST", "body": formdata}, resolve, working_dir=tmp_path
        )


# ---------------------------------------------------------------- body pruning


@pytest.mark.parametrize("method", ["GET", "HEAD", "COPY", "PURGE", "UNLOCK"])
def test_body_is_pruned_for_bodyless_methods(method: str) -> None:
    body = {"mode": "raw", "raw": "payload"}
    request = build_request({"url": "h.test", "method": method, "body": body}, resolve)
    assert request.body is None and request.header("Content-Length") is None


def test_disable_body_pruning_sends_a_get_body(
    client: HttpClient, http_server: LoopbackServer
) -> None:
    request = build_request(
        {
            "url": http_server.url("/echo"),
            "method": "GET",
            "body": {"mode": "raw", "raw": "payload"},
        },
        resolve,
        behavior={"disableBodyPruning": True},
    )
    echoed = echo_json(client.send(request).body)
    assert echoed["method"] == "GET" and echoed["body"] == b"payload"


def test_pruned_get_arrives_without_body(client: HttpClient, http_server: LoopbackServer) -> None:
    echoed = send_and_echo(
        client, http_server, {"method": "GET", "body": {"mode": "raw", "raw": "x"}}
    )
    assert echoed["body"] == b"" and header_values(echoed, "Content-Length") == []
