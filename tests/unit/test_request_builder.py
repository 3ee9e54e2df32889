"""Tests for runtime.request_builder: URLs, headers, bodies, system headers.

Body modes are also checked on the server side: the request goes through the
real HTTP client to a loopback echo server, which reports what arrived.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from email.message import Message
from email.parser import BytesParser
from email.policy import HTTP
from pathlib import Path
from typing import Any

import pytest

from pmrunner.errors import RequestError
from runtime.http_client import HttpClient
from runtime.options import RunOptions, Timeouts
from runtime.request_builder import (
    USER_AGENT,
    build_headers,
    build_request,
    build_url,
    normalize_url,
    parse_url,
)
from tests.servers import LoopbackServer, echo_json, header_values

pytest_plugins = ("tests.servers",)
pytestmark = pytest.mark.usefixtures("no_proxy_env")

VARIABLES = {
    "host": "api.example.test",
    "baseUrl": "https://api.example.test/v1",
    "id": "42",
    "token": "s3cr3t",
    "name": "Ada Lovelace",
}


def resolve(text: str) -> str:
    """A stand-in for the runner's substitution: {{name}} from VARIABLES, else left as is."""
    return re.sub(r"\{\{([^{}]+)\}\}", lambda m: VARIABLES.get(m.group(1), m.group(0)), text)


def identity(text: str) -> str:
    return text


@pytest.fixture()
def client() -> Iterator[HttpClient]:
    with HttpClient(RunOptions(timeouts=Timeouts(request=5000))) as http_client:
        yield http_client


def send_and_echo(client: HttpClient, server: LoopbackServer, request: dict[str, Any]) -> Any:
    """Build ``request`` against the echo server, send it, return what the server saw."""
    outgoing = build_request({"url": server.url("/echo"), **request}, resolve)
    response = client.send(outgoing)
    assert response.code == 200
    return echo_json(response.body)


def multipart_parts(echoed: dict[str, Any]) -> list[Message]:
    content_type = header_values(echoed, "Content-Type")[0]
    document = f"Content-Type: {content_type}\r\n\r\n".encode() + echoed["body"]
    message = BytesParser(policy=HTTP).parsebytes(document)
    assert message.is_multipart()
    return list(message.iter_parts())


# ------------------------------------------------------------------------- URL


def test_url_string_without_scheme_gets_http() -> None:
    assert build_url("{{host}}/users/{{id}}", resolve) == "http://api.example.test/users/42"


def test_url_object_is_rebuilt_from_parts_not_raw() -> None:
    url = {
        "raw": "http://ignored.test/raw",
        "protocol": "https",
        "host": ["{{host}}"],
        "port": "8443",
        "path": ["users", "{{id}}"],
        "query": [
            {"key": "q", "value": "{{name}}"},
            {"key": "off", "value": "1", "disabled": True},
            {"key": "flag", "value": None},
        ],
        "hash": "top",
    }
    assert build_url(url, resolve) == (
        "https://api.example.test:8443/users/42?q=Ada%20Lovelace&flag#top"
    )


def test_url_object_with_only_raw_uses_raw() -> None:
    assert build_url({"raw": "{{host}}/x"}, resolve) == "http://api.example.test/x"


def test_variable_holding_a_base_url_is_reparsed() -> None:
    url = {"host": ["{{baseUrl}}"], "path": ["users", "{{id}}"]}
    assert build_url(url, resolve) == "https://api.example.test/v1/users/42"


def test_path_variables_are_substituted_from_url_variable() -> None:
    url = {
        "raw": "{{baseUrl}}/users/:userId/posts/:missing",
        "variable": [{"key": "userId", "value": "{{id}}"}, {"id": "unused", "value": "x"}],
    }
    assert build_url(url, resolve) == "https://api.example.test/v1/users/42/posts/:missing"


def test_every_query_param_disabled_drops_the_question_mark() -> None:
    url = {"host": ["h.test"], "query": [{"key": "a", "value": "1", "disabled": True}]}
    assert build_url(url, resolve) == "http://h.test/"


@pytest.mark.parametrize(
    ("raw", "encoded"),
    [
        ("http://h.test/a b/c", "http://h.test/a%20b/c"),
        ('http://h.test/{x}/"q"', "http://h.test/%7Bx%7D/%22q%22"),
        ("http://h.test/already%20done", "http://h.test/already%20done"),
        ("http://h.test/100%", "http://h.test/100%25"),
        ("http://h.test/caf\u00e9", "http://h.test/caf%C3%A9"),
        ("http://h.test/?q=a b&r='x'&s=<>", "http://h.test/?q=a%20b&r=%27x%27&s=%3C%3E"),
        ("http://h.test/?a=b=c&d=[1]", "http://h.test/?a=b=c&d=[1]"),
        ("http://h.test/?", "http://h.test/?"),
        ("http://h.test/p#frag ment", "http://h.test/p#frag%20ment"),
        ("HTTP://H.Test:8080", "http://h.test:8080/"),
        ("http://user:p@ss@h.test/", "http://user:p%40ss@h.test/"),
        ("http://b\u00fccher.test/", "http://xn--bcher-kva.test/"),
        ("http://[::1]:8080/x", "http://[::1]:8080/x"),
    ],
)
def test_url_encoding_matches_postman(raw: str, encoded: str) -> None:
    assert normalize_url(raw) == encoded


def test_unresolved_variable_in_path_is_encoded() -> None:
    assert build_url("h.test/{{nope}}", resolve) == "http://h.test/%7B%7Bnope%7D%7D"


def test_parse_url_splits_like_postman() -> None:
    parts = parse_url("https://u:p@h.test:81/a/b?x=1&y#z")
    assert (parts.protocol, parts.user, parts.password, parts.host, parts.port) == (
        "https",
        "u",
        "p",
        "h.test",
        "81",
    )
    assert parts.path == ["a", "b"]
    assert parts.query == [("x", "1"), ("y", None)]
    assert parts.hash == "z"


@pytest.mark.parametrize("url", [None, {"path": ["x"]}, "   ", 5])
def test_bad_url_is_a_request_error(url: Any) -> None:
    with pytest.raises(RequestError, match=r"request\.url"):
        build_request({"url": url}, resolve)


# --------------------------------------------------------------------- headers


def test_headers_keep_order_and_duplicates_and_drop_disabled() -> None:
    header = [
        {"key": "X-B", "value": "{{token}}"},
        {"key": "X-A", "value": "1"},
        {"key": "X-Off", "value": "no", "disabled": True},
        {"key": "", "value": "nameless"},
        {"key": "X-A", "value": "2"},
    ]
    assert build_headers(header, resolve) == [("X-B", "s3cr3t"), ("X-A", "1"), ("X-A", "2")]


def test_v1_header_string_form() -> None:
    text = "X-One: 1\n// X-Off: 0\n\nX-Two:  {{id}} \n"
    assert build_headers(text, resolve) == [("X-One", "1"), ("X-Two", "42")]


def test_header_not_a_list_is_a_request_error() -> None:
    with pytest.raises(RequestError, match=r"request\.header"):
        build_headers(42, resolve)


# --------------------------------------------------------------------- methods


def test_method_defaults_to_get_and_is_upper_cased() -> None:
    assert build_request({"url": "h.test"}, resolve).method == "GET"
    assert build_request({"url": "h.test", "method": "report"}, resolve).method == "REPORT"


def test_invalid_method_is_a_request_error() -> None:
    with pytest.raises(RequestError, match="not a valid HTTP method"):
        build_request({"url": "h.test", "method": "GET X"}, resolve)


def test_custom_method_reaches_the_server(client: HttpClient, http_server: LoopbackServer) -> None:
    echoed = send_and_echo(client, http_server, {"method": "purge"})
    assert echoed["method"] == "PURGE"


# -------------------------------------------------------------- system headers


def test_system_headers_follow_user_headers_in_postman_order() -> None:
    request = build_request(
        {
            "url": "h.test:8080/x",
            "method": "POST",
            "header": [{"key": "X-Mine", "value": "1"}],
            "body": {"mode": "raw", "raw": "hi"},
        },
        resolve,
    )
    names = [key for key, _ in request.headers]
    assert names == [
        "X-Mine",
        "User-Agent",
        "Accept",
        "Cache-Control",
        "Postman-Token",
        "Host",
        "Accept-Encoding",
        "Connection",
        "Content-Type",
        "Content-Length",
    ]
    assert request.header("User-Agent") == USER_AGENT
    assert request.header("Host") == "h.test:8080"
    assert request.header("Accept-Encoding") == "gzip, deflate, br"
    assert request.header("Content-Length") == "2"
    uuid.UUID(request.header("Postman-Token") or "")


def test_user_headers_override_system_headers_case_insensitively() -> None:
    header = [{"key": "user-agent", "value": "mine/1"}, {"key": "ACCEPT", "value": "text/csv"}]
    request = build_request({"url": "h.test", "header": header}, resolve)
    assert header_names(request.headers).count("user-agent") == 1
    assert request.header("User-Agent") == "mine/1"
    assert request.header("Accept") == "text/csv"


@pytest.mark.parametrize(
    "disabled",
    [{"user-agent": True, "Postman-Token": True, "accept": False}, ["User-Agent", "postman-token"]],
)
def test_disabled_system_headers(disabled: Any) -> None:
    behavior = {"disabledSystemHeaders": disabled}
    request = build_request({"url": "h.test"}, resolve, behavior=behavior)
    names = header_names(request.headers)
    assert "user-agent" not in names and "postman-token" not in names
    assert "accept" in names


def test_postman_token_is_new_for_every_request() -> None:
    first = build_request({"url": "h.test"}, resolve).header("Postman-Token")
    second = build_request({"url": "h.test"}, resolve).header("Postman-Token")
    assert first != second


def header_names(headers: list[tuple[str, str]]) -> list[str]:
    return [key.lower() for key, _ in headers]


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


def test_string_request_is_a_get_of_that_url() -> None:
    request = build_request("{{host}}/ping", resolve)
    assert (request.method, request.url) == ("GET", "http://api.example.test/ping")


def test_url_query_and_encoding_reach_the_server(
    client: HttpClient, http_server: LoopbackServer
) -> None:
    request = build_request(
        {
            "url": {
                "host": ["127.0.0.1"],
                "port": str(http_server.port),
                "path": ["echo", "a b", "caf\u00e9"],
                "query": [
                    {"key": "q", "value": "{{name}}"},
                    {"key": "x", "value": "1", "disabled": True},
                ],
            }
        },
        resolve,
    )
    echoed = echo_json(client.send(request).body)
    assert echoed["target"] == "/echo/a%20b/caf%C3%A9?q=Ada%20Lovelace"


def test_url_names_stay_importable_from_the_builder() -> None:
    from runtime import request_builder, urls

    for name in ("UrlParts", "build_url", "encode_url", "normalize_url", "parse_url"):
        assert getattr(request_builder, name) is getattr(urls, name)
    assert request_builder.percent_encode("a b%zz", frozenset(" ")) == "a%20b%25zz"
