"""Tests for runtime.request_builder: URLs, built, encoded and sent to a loopback echo server."""

from __future__ import annotations

from typing import Any

import pytest

from pmrunner.errors import RequestError
from runtime.http_client import HttpClient
from runtime.request_builder import build_request, build_url, normalize_url, parse_url
from tests.servers import LoopbackServer, echo_json

# The *_fixture names are fixtures: pytest finds them under the names their decorators give.
from tests.unit.request_builder_helpers import (  # noqa: F401
    client_fixture,
    resolve,
)

pytest_plugins = ("tests.servers",)
pytestmark = pytest.mark.usefixtures("no_proxy_env")


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
        ("http://h.test/100%", "http://h.test/100%"),
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
    assert request_builder.percent_encode("a b%zz", frozenset(" ")) == "a%20b%zz"
