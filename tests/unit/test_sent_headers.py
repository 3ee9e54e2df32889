"""Tests for ``HttpResponse.sent_headers``: the request headers as they went on the wire.

The strongest check reads the raw bytes a loopback socket received and
compares their header lines with the record, line for line.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from runtime.exchange import HttpResponse, OutgoingRequest
from runtime.http_client import HttpClient
from runtime.options import RunOptions, Timeouts, TLSOptions
from runtime.request_builder import build_request
from tests.servers import LoopbackServer, TlsMaterial, echo_json

pytest_plugins = ("tests.servers",)
pytestmark = pytest.mark.usefixtures("no_proxy_env")

CANNED_ANSWER = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"


def identity(text: str) -> str:
    return text


def request_to(url: str, **fields: Any) -> OutgoingRequest:
    return build_request({"url": url, **fields}, identity)


@pytest.fixture()
def client() -> Iterator[HttpClient]:
    with HttpClient(RunOptions(timeouts=Timeouts(request=5000))) as http_client:
        yield http_client


class RawCapture:
    """A loopback listener that keeps the raw bytes of one request and answers 200.

    Used as an HTTP server, or as an HTTP proxy (it answers whatever it is asked).
    """

    def __init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(5)
        self.port: int = self._listener.getsockname()[1]
        self.received = b""
        self._thread = threading.Thread(target=self._serve_one, daemon=True)
        self._thread.start()

    def _serve_one(self) -> None:
        with self._listener, self._listener.accept()[0] as connection:
            connection.settimeout(5)
            for _ in range(1000):  # bounded: a request head is far below 1000 reads
                chunk = connection.recv(65536)
                self.received += chunk
                if not chunk or b"\r\n\r\n" in self.received:
                    break
            connection.sendall(CANNED_ANSWER)

    def header_lines(self) -> list[tuple[str, str]]:
        """The header lines received, as (name, value) text (latin-1, as on the wire)."""
        self._thread.join(timeout=5)
        head = self.received.split(b"\r\n\r\n", 1)[0].decode("latin-1")
        lines = head.split("\r\n")[1:]
        return [(name, value.strip()) for name, _, value in (line.partition(":") for line in lines)]

    def request_line(self) -> str:
        self._thread.join(timeout=5)
        return self.received.split(b"\r\n", 1)[0].decode("latin-1")


def test_record_matches_the_bytes_on_the_wire_line_for_line(client: HttpClient) -> None:
    capture = RawCapture()
    request = request_to(
        f"http://127.0.0.1:{capture.port}/raw",
        method="POST",
        header=[
            {"key": "X-Dup", "value": "1"},
            {"key": "X-Dup", "value": "2"},
            {"key": "Cookie", "value": "mine=1"},
        ],
        body={"mode": "raw", "raw": "payload"},
    )
    response = client.send(request)
    assert response.code == 200
    assert response.sent_headers == capture.header_lines()
    names = [name for name, _ in response.sent_headers]
    assert names.count("X-Dup") == 2 and "Content-Length" in names and "Cookie" in names


def test_headers_added_below_the_client_are_recorded(client: HttpClient) -> None:
    capture = RawCapture()
    request = build_request(
        {
            "url": f"http://127.0.0.1:{capture.port}/chunked",
            "method": "POST",
            "body": {"mode": "raw", "raw": "streamed"},
        },
        identity,
        behavior={"disabledSystemHeaders": ["content-length", "host"]},
    )
    assert request.header("Host") is None and request.header("Transfer-Encoding") is None
    response = client.send(request)
    recorded = dict(response.sent_headers)
    assert recorded["Transfer-Encoding"] == "chunked"  # urllib3's own framing
    assert recorded["Host"] == f"127.0.0.1:{capture.port}"  # http.client's own Host
    assert response.sent_headers == capture.header_lines()


def test_jar_cookies_are_in_the_record(client: HttpClient, http_server: LoopbackServer) -> None:
    client.send(request_to(http_server.url("/cookies/set?session=abc")))
    cookie = [{"key": "Cookie", "value": "mine=2"}]
    response = client.send(request_to(http_server.url("/echo"), header=cookie))
    assert ("Cookie", "mine=2; session=abc") in response.sent_headers
    assert response.sent_headers == echo_json(response.body)["headers"]


def test_utf8_value_is_recorded_as_text(client: HttpClient) -> None:
    capture = RawCapture()
    request = request_to(
        f"http://127.0.0.1:{capture.port}/", header=[{"key": "X-Name", "value": "Zoë ✓"}]
    )
    response = client.send(request)
    assert ("X-Name", "Zoë ✓") in response.sent_headers
    (on_the_wire,) = [value for name, value in capture.header_lines() if name == "X-Name"]
    assert on_the_wire.encode("latin-1") == "Zoë ✓".encode()


def test_each_hop_keeps_its_own_record(client: HttpClient, http_server: LoopbackServer) -> None:
    start = http_server.url("/redirect-to?url=/echo&status=302")
    response = client.send(request_to(start, method="POST", body={"mode": "raw", "raw": "x"}))
    final = dict(response.sent_headers)
    assert final["Referer"] == start and "Content-Type" not in final
    assert response.sent_headers == echo_json(response.body)["headers"]
    (first,) = response.history
    assert "Referer" not in dict(first.sent_headers)
    assert dict(first.sent_headers)["Content-Type"] == "text/plain"


def test_a_reused_connection_records_only_its_latest_request(
    client: HttpClient, http_server: LoopbackServer
) -> None:
    first = client.send(request_to(http_server.url("/echo"), header=[{"key": "X-A", "value": "1"}]))
    second = client.send(
        request_to(http_server.url("/echo"), header=[{"key": "X-B", "value": "2"}])
    )
    assert ("X-A", "1") in first.sent_headers
    assert [name for name, _ in second.sent_headers if name.startswith("X-")] == ["X-B"]
    assert second.sent_headers == echo_json(second.body)["headers"]


def test_answered_challenge_records_the_second_request(
    client: HttpClient, http_server: LoopbackServer
) -> None:
    class Answering:
        def sign(self, request: OutgoingRequest) -> None:
            request.set_header("Authorization", "Test first")

        def challenge(self, request: OutgoingRequest, response: HttpResponse) -> bool:
            request.set_header("Authorization", "Test answered")
            return response.code == 401

    response = client.send(request_to(http_server.url("/challenge")), signer=Answering())
    assert response.code == 200
    assert dict(response.sent_headers)["Authorization"] == "Test answered"


def test_https_requests_are_recorded(
    https_server: LoopbackServer, tls_material: TlsMaterial
) -> None:
    options = RunOptions(
        timeouts=Timeouts(request=5000), tls=TLSOptions(extra_ca_certs=tls_material.ca_file)
    )
    with HttpClient(options) as client:
        response = client.send(request_to(https_server.url("/echo")))
    assert response.sent_headers == echo_json(response.body)["headers"]
    assert dict(response.sent_headers)["Host"] == f"127.0.0.1:{https_server.port}"


def test_proxy_credentials_are_sent_but_not_recorded(monkeypatch: pytest.MonkeyPatch) -> None:
    proxy = RawCapture()
    monkeypatch.setenv("HTTP_PROXY", f"http://user:proxy-secret@127.0.0.1:{proxy.port}")
    target = f"http://127.0.0.1:{proxy.port + 1}/through"  # never reached: the proxy answers
    # Without the builder's Host header, the one http.client adds shows the record is the wire's.
    request = build_request({"url": target}, identity, behavior={"disabledSystemHeaders": ["host"]})
    with HttpClient(RunOptions(timeouts=Timeouts(request=5000))) as client:
        response = client.send(request)
    assert proxy.request_line() == f"GET {target} HTTP/1.1"
    on_the_wire = proxy.header_lines()
    assert "Proxy-Authorization" in dict(on_the_wire)
    assert dict(response.sent_headers)["Host"] == f"127.0.0.1:{proxy.port + 1}"
    assert response.sent_headers == [
        (name, value) for name, value in on_the_wire if name != "Proxy-Authorization"
    ]
