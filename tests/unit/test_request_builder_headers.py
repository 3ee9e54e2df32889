"""Tests for runtime.request_builder: user headers, methods and Postman's system headers."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from pmrunner.errors import RequestError
from runtime.http_client import HttpClient
from runtime.request_builder import USER_AGENT, build_headers, build_request
from tests.servers import LoopbackServer

# The *_fixture names are fixtures: pytest finds them under the names their decorators give.
from tests.unit.request_builder_helpers import (  # noqa: F401
    client_fixture,
    resolve,
    send_and_echo,
)

pytest_plugins = ("tests.servers",)
pytestmark = pytest.mark.usefixtures("no_proxy_env")


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
