"""A loopback HTTP server for the auth tests, and a sender for signed requests.

The server runs on 127.0.0.1 in a thread; a test hands it a ``respond``
function that sees each request exactly as it arrived (method, target,
headers, body) and verifies the signature on its own, independently of the
signer. Requests go out with plain ``requests`` and no proxy settings.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit

import requests

from runtime.exchange import HttpResponse, OutgoingRequest


@dataclass
class Received:
    """One request as the server saw it."""

    method: str
    target: str  # path and query, as on the request line
    headers: list[tuple[str, str]]
    body: bytes
    base_url: str

    def header(self, name: str) -> str | None:
        lowered = name.lower()
        return next((v for k, v in self.headers if k.lower() == lowered), None)

    @property
    def url(self) -> str:
        return self.base_url + self.target

    @property
    def path(self) -> str:
        return urlsplit(self.target).path

    @property
    def query(self) -> list[tuple[str, str]]:
        return parse_qsl(urlsplit(self.target).query, keep_blank_values=True)


Reply = tuple[int, list[tuple[str, str]], bytes]
Respond = Callable[[Received], Reply]


def ok(_: Received) -> Reply:
    return 200, [], b"ok"


@dataclass
class LoopbackServer:
    """The running server: its base URL and the requests it received."""

    base_url: str
    received: list[Received] = field(default_factory=list)


@contextmanager
def loopback_server(respond: Respond = ok) -> Iterator[LoopbackServer]:
    """Serve on 127.0.0.1 (a free port) until the block ends."""
    state = LoopbackServer(base_url="")

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            received = Received(
                method=self.command,
                target=self.path,
                headers=list(self.headers.items()),
                body=self.rfile.read(length) if length else b"",
                base_url=state.base_url,
            )
            state.received.append(received)
            try:
                code, headers, body = respond(received)
            except Exception as error:  # a verifier that crashed answers 500, visibly
                code, headers, body = 500, [], repr(error).encode()
            self.send_response(code)
            for name, value in headers:
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _handle

        def log_message(self, format: str, *args: object) -> None:
            """Keep test output quiet."""

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.base_url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def send(request: OutgoingRequest) -> HttpResponse:
    """Send a signed request with plain requests (no proxies from the environment)."""
    with requests.Session() as session:
        session.trust_env = False
        reply = session.request(
            request.method,
            request.url,
            headers=dict(request.headers),
            data=request.body,
            timeout=5,
            allow_redirects=False,
        )
    return HttpResponse(
        code=reply.status_code,
        reason=reply.reason,
        headers=list(reply.raw.headers.items()),
        body=reply.content,
        response_time_ms=reply.elapsed.total_seconds() * 1000,
        url=reply.url,
    )


def test_server_sees_the_request_as_sent() -> None:
    with loopback_server() as server:
        request = OutgoingRequest(
            "POST",
            f"{server.base_url}/a/b?x=1&y=two%20words",
            headers=[("X-Custom", "value"), ("Content-Type", "text/plain")],
            body=b"hello",
        )
        response = send(request)
    assert response.code == 200
    assert response.body == b"ok"
    (seen,) = server.received
    assert seen.method == "POST"
    assert seen.target == "/a/b?x=1&y=two%20words"
    assert seen.query == [("x", "1"), ("y", "two words")]
    assert seen.header("x-custom") == "value"
    assert seen.body == b"hello"


def test_server_reports_a_crashing_verifier_as_500() -> None:
    def crash(_: Received) -> Reply:
        raise ValueError("bad signature")

    with loopback_server(crash) as server:
        response = send(OutgoingRequest("GET", server.base_url + "/"))
    assert response.code == 500
    assert b"bad signature" in response.body
