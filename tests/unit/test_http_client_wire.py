"""runtime.http_client on the wire: responses, headers, signers and encodings, on loopback."""

from __future__ import annotations

import gzip

import pytest

from pmrunner.errors import RequestError
from runtime.exchange import HttpResponse, OutgoingRequest
from runtime.http_client import HttpClient, decode_body
from runtime.request_builder import build_request
from tests.servers import ENCODED_PAYLOAD, LoopbackServer, echo_json, header_values

# The *_fixture names are fixtures: pytest finds them under the names their decorators give.
from tests.unit.http_client_helpers import (  # noqa: F401
    client_fixture,
    identity,
    request_to,
)

pytest_plugins = ("tests.servers",)
pytestmark = pytest.mark.usefixtures("no_proxy_env")


# ------------------------------------------------------------- the wire format


def test_response_fields(client: HttpClient, http_server: LoopbackServer) -> None:
    response = client.send(request_to(http_server.url("/delay/150")))
    assert (response.code, response.reason, response.body) == (200, "OK", b"late")
    assert response.url == http_server.url("/delay/150")
    assert response.response_time_ms >= 150
    assert response.raw_size == 4 and response.history == []


def test_error_status_is_a_response_not_an_error(
    client: HttpClient, http_server: LoopbackServer
) -> None:
    assert client.send(request_to(http_server.url("/status/503"))).code == 503


def test_response_headers_keep_order_and_duplicates(
    client: HttpClient, http_server: LoopbackServer
) -> None:
    response = client.send(request_to(http_server.url("/duplicate-headers")))
    interesting = [(k, v) for k, v in response.headers if k in ("Set-Cookie", "X-Dup")]
    assert interesting == [
        ("Set-Cookie", "a=1; Path=/"),
        ("X-Dup", "one"),
        ("Set-Cookie", "b=2; Path=/"),
        ("X-Dup", "two"),
    ]
    assert response.header_values("x-dup") == ["one", "two"]


def test_system_headers_arrive_and_nothing_else_is_added(
    client: HttpClient, http_server: LoopbackServer
) -> None:
    request = request_to(
        http_server.url("/echo"),
        header=[{"key": "X-Dup", "value": "1"}, {"key": "X-Dup", "value": "2"}],
    )
    echoed = echo_json(client.send(request).body)
    names = [key for key, _ in echoed["headers"]]
    assert names == [
        "X-Dup",
        "X-Dup",
        "User-Agent",
        "Accept",
        "Cache-Control",
        "Postman-Token",
        "Host",
        "Accept-Encoding",
        "Connection",
    ]
    assert header_values(echoed, "X-Dup") == ["1", "2"]
    assert header_values(echoed, "User-Agent") == ["PostmanRuntime/7.43.0"]


def test_disabled_system_headers_are_not_replaced_by_library_defaults(
    client: HttpClient, http_server: LoopbackServer
) -> None:
    request = build_request(
        {"url": http_server.url("/echo")},
        identity,
        behavior={"disabledSystemHeaders": {"user-agent": True, "accept-encoding": True}},
    )
    echoed = echo_json(client.send(request).body)
    assert header_values(echoed, "User-Agent") == []
    assert header_values(echoed, "Accept-Encoding") == []


def test_without_content_length_the_body_is_chunked(
    client: HttpClient, http_server: LoopbackServer
) -> None:
    request = build_request(
        {
            "url": http_server.url("/echo"),
            "method": "POST",
            "body": {"mode": "raw", "raw": "streamed"},
        },
        identity,
        behavior={"disabledSystemHeaders": ["content-length"]},
    )
    echoed = echo_json(client.send(request).body)
    assert header_values(echoed, "Transfer-Encoding") == ["chunked"]
    assert echoed["body"] == b"streamed"


def test_non_latin1_header_value_is_sent_as_utf8(
    client: HttpClient, http_server: LoopbackServer
) -> None:
    request = request_to(http_server.url("/echo"), header=[{"key": "X-Name", "value": "Zoë ✓"}])
    echoed = echo_json(client.send(request).body)
    (received,) = header_values(echoed, "X-Name")
    assert received.encode("latin-1").decode("utf-8") == "Zoë ✓"


def test_header_with_newline_is_a_request_error(
    client: HttpClient, http_server: LoopbackServer
) -> None:
    request = request_to(http_server.url("/echo"), header=[{"key": "X-Bad", "value": "a\r\nb"}])
    with pytest.raises(RequestError, match="header"):
        client.send(request)


# ---------------------------------------------------------------------- signer


class AnsweringSigner:
    """Signs with a first token and answers the /challenge endpoint's 401 once."""

    def __init__(self, new_body: bytes | None = None) -> None:
        self.challenges = 0
        self.new_body = new_body

    def sign(self, request: OutgoingRequest) -> None:
        request.set_header("Authorization", "Test first")
        request.secrets.add("first")
        if self.new_body is not None:
            request.body = self.new_body

    def challenge(self, request: OutgoingRequest, response: HttpResponse) -> bool:
        self.challenges += 1
        if response.code == 401 and response.header("WWW-Authenticate"):
            request.set_header("Authorization", "Test answered")
            return True
        return False


def test_signer_signs_and_answers_a_challenge_once(
    client: HttpClient, http_server: LoopbackServer
) -> None:
    signer = AnsweringSigner()
    request = request_to(http_server.url("/challenge"))
    response = client.send(request, signer=signer)
    assert (response.code, response.body) == (200, b"welcome")
    assert signer.challenges == 1
    assert "first" in request.secrets


def test_unanswered_challenge_returns_the_401(
    client: HttpClient, http_server: LoopbackServer
) -> None:
    signer = AnsweringSigner()
    response = client.send(request_to(http_server.url("/echo")), signer=signer)
    assert response.code == 200 and signer.challenges == 1
    assert header_values(echo_json(response.body), "Authorization") == ["Test first"]


def test_content_length_follows_a_body_changed_by_the_signer(
    client: HttpClient, http_server: LoopbackServer
) -> None:
    request = request_to(http_server.url("/echo"), method="POST", body={"mode": "raw", "raw": "ab"})
    response = client.send(request, signer=AnsweringSigner(new_body=b"a longer body"))
    echoed = echo_json(response.body)
    assert echoed["body"] == b"a longer body"
    assert header_values(echoed, "Content-Length") == ["13"]


# ------------------------------------------------------------------- encodings


@pytest.mark.parametrize("coding", ["gzip", "deflate", "deflate-raw", "br", "gzip-br"])
def test_compressed_bodies_are_decoded(
    client: HttpClient, http_server: LoopbackServer, coding: str
) -> None:
    response = client.send(request_to(http_server.url(f"/encoding/{coding}")))
    assert response.body == ENCODED_PAYLOAD
    assert 0 < response.raw_size < len(ENCODED_PAYLOAD)


def test_decode_body_edge_cases() -> None:
    assert decode_body(b"", "gzip") == b""
    assert decode_body(b"plain", None) == b"plain"
    assert decode_body(b"plain", "identity") == b"plain"
    assert decode_body(b"zstd?", "zstd") == b"zstd?"
    assert decode_body(gzip.compress(b"x"), "GZIP") == b"x"
    with pytest.raises(RequestError, match="gzip"):
        decode_body(b"not gzip at all", "gzip")
