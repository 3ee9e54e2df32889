"""Loopback HTTP, HTTPS and proxy servers for tests, with pytest fixtures.

Use them from a test module with ``pytest_plugins = ("tests.servers",)`` and
the fixtures ``http_server``, ``https_server``, ``mtls_server``,
``proxy_server`` and ``tls_material``. Every server listens on 127.0.0.1 on a
free port and is stopped when the session ends. (PYTEST_DONT_REWRITE: test
modules import this file before pytest loads it as a plugin.)

Endpoints of the HTTP(S) servers (any method):

    /echo...                  JSON: method, target, headers (ordered pairs), body (base64)
    /status/<code>            that status code
    /redirect-to?url=U&status=S   a redirect to U (status 302 by default)
    /redirect/<n>             n redirects, then /echo
    /loop                     redirects to itself, forever
    /cookies                  JSON: the Cookie header received
    /cookies/set?k=v...       sets each cookie (Path=/), answers like /cookies
    /cookies/set-redirect?k=v sets the cookies and redirects to /cookies
    /encoding/<gzip|deflate|deflate-raw|br|gzip-br>   ENCODED_PAYLOAD, encoded so
    /delay/<ms>               answers after ms (at most 10 s)
    /drip?chunks=N&interval=ms  sends the body in N pieces, interval ms apart
    /challenge                401 with WWW-Authenticate unless Authorization is "Test answered"
    /duplicate-headers        two Set-Cookie and two X-Dup headers
"""

from __future__ import annotations

import base64
import gzip
import ipaddress
import json
import select
import socket
import ssl
import threading
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from http.client import HTTPConnection
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import brotli
import pytest
import trustme
from cryptography.hazmat.primitives import serialization

ENCODED_PAYLOAD = json.dumps({"message": "decoded " * 64}).encode()
CLIENT_KEY_PASSPHRASE = "client-key-passphrase"
MAX_DELAY_SECONDS = 10.0


def echo_json(response_body: bytes) -> dict[str, Any]:
    """Decode an /echo answer; ``body`` comes back as bytes, ``headers`` as tuples."""
    data: dict[str, Any] = json.loads(response_body)
    data["body"] = base64.b64decode(data["body"])
    data["headers"] = [tuple(pair) for pair in data["headers"]]
    return data


def header_values(echoed: dict[str, Any], name: str) -> list[str]:
    """Every value of one header in an /echo answer, in order."""
    return [value for key, value in echoed["headers"] if key.lower() == name.lower()]


# ----------------------------------------------------------------- echo server


class EchoHandler(BaseHTTPRequestHandler):
    """Answers the endpoints listed in the module docstring, for any method."""

    protocol_version = "HTTP/1.1"
    server_version = "pmrunner-test"
    server: LoopbackServer

    def __getattr__(self, name: str) -> Any:
        if name.startswith("do_"):  # any method, custom ones included
            return self._dispatch
        raise AttributeError(name)

    def log_message(self, format: str, *args: Any) -> None:
        """Keep test output quiet."""

    def _dispatch(self) -> None:
        self.server.seen.append((self.command, self.path))
        body = self._read_body()
        parts = urlsplit(self.path)
        query = dict(parse_qsl(parts.query, keep_blank_values=True))
        path = parts.path
        if path.startswith("/status/"):
            self._send(int(path.rsplit("/", 1)[1]), b"status")
        elif path == "/redirect-to":
            self._redirect(query["url"], int(query.get("status", "302")))
        elif path.startswith("/redirect/"):
            left = int(path.rsplit("/", 1)[1])
            self._redirect(f"/redirect/{left - 1}" if left > 1 else "/echo", 302)
        elif path == "/loop":
            self._redirect("/loop", 302)
        elif path.startswith("/cookies"):
            self._cookies(path, query)
        elif path.startswith("/encoding/"):
            self._encoded(path.rsplit("/", 1)[1])
        elif path.startswith("/delay/"):
            time.sleep(min(int(path.rsplit("/", 1)[1]) / 1000, MAX_DELAY_SECONDS))
            self._send(200, b"late")
        elif path == "/drip":
            self._drip(int(query.get("chunks", "5")), int(query.get("interval", "100")))
        elif path == "/challenge":
            self._challenge()
        elif path == "/duplicate-headers":
            self._send(
                200,
                b"dup",
                [
                    ("Set-Cookie", "a=1; Path=/"),
                    ("X-Dup", "one"),
                    ("Set-Cookie", "b=2; Path=/"),
                    ("X-Dup", "two"),
                ],
            )
        else:
            self._echo(body)

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            return self._read_chunked()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _read_chunked(self) -> bytes:
        chunks = []
        for _ in range(100_000):  # bounded: tests never send this many chunks
            size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
            if size == 0:
                self.rfile.readline()
                break
            chunks.append(self.rfile.read(size))
            self.rfile.readline()
        return b"".join(chunks)

    def _send(self, code: int, body: bytes, headers: list[tuple[str, str]] | None = None) -> None:
        self.send_response(code)
        for key, value in headers or []:
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _send_json(self, data: Any, headers: list[tuple[str, str]] | None = None) -> None:
        payload = json.dumps(data).encode()
        self._send(200, payload, [("Content-Type", "application/json"), *(headers or [])])

    def _echo(self, body: bytes) -> None:
        self._send_json(
            {
                "method": self.command,
                "target": self.path,
                "headers": list(self.headers.items()),
                "body": base64.b64encode(body).decode(),
            }
        )

    def _redirect(self, location: str, status: int) -> None:
        self._send(status, b"moved", [("Location", location)])

    def _cookies(self, path: str, query: dict[str, str]) -> None:
        set_cookies = [("Set-Cookie", f"{key}={value}; Path=/") for key, value in query.items()]
        if path == "/cookies/set-redirect":
            self._send(302, b"moved", [*set_cookies, ("Location", "/cookies")])
            return
        received = self.headers.get("Cookie") if path == "/cookies" else None
        self._send_json({"cookie": received}, set_cookies if path == "/cookies/set" else [])

    def _encoded(self, coding: str) -> None:
        encoders = {
            "gzip": (gzip.compress, "gzip"),
            "deflate": (zlib.compress, "deflate"),
            "deflate-raw": (_raw_deflate, "deflate"),
            "br": (brotli.compress, "br"),
            "gzip-br": (lambda data: brotli.compress(gzip.compress(data)), "gzip, br"),
        }
        encode, header = encoders[coding]
        self._send(200, encode(ENCODED_PAYLOAD), [("Content-Encoding", header)])

    def _drip(self, chunks: int, interval_ms: int) -> None:
        self.send_response(200)
        self.send_header("Content-Length", str(chunks))
        self.end_headers()
        for _ in range(min(chunks, 1000)):
            self.wfile.write(b"x")
            self.wfile.flush()
            time.sleep(min(interval_ms / 1000, MAX_DELAY_SECONDS))

    def _challenge(self) -> None:
        if self.headers.get("Authorization") == "Test answered":
            self._send(200, b"welcome")
        else:
            self._send(401, b"who?", [("WWW-Authenticate", 'Test realm="tests"')])


def _raw_deflate(data: bytes) -> bytes:
    compressor = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    return compressor.compress(data) + compressor.flush()


class LoopbackServer(ThreadingHTTPServer):
    """A threaded server on 127.0.0.1:<free port>, optionally speaking TLS."""

    daemon_threads = True

    def __init__(
        self,
        handler: type[BaseHTTPRequestHandler] = EchoHandler,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        super().__init__(("127.0.0.1", 0), handler)
        self.ssl_context = ssl_context
        self.seen: list[tuple[str, str]] = []  # (method, target) of every request received
        self._thread = threading.Thread(target=self.serve_forever, daemon=True)

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    @property
    def base_url(self) -> str:
        scheme = "https" if self.ssl_context else "http"
        return f"{scheme}://127.0.0.1:{self.port}"

    def url(self, path: str = "/echo") -> str:
        return self.base_url + path

    def finish_request(self, request: Any, client_address: Any) -> None:
        # The handshake runs in the request's thread, so a failing client blocks no one.
        if self.ssl_context is not None:
            request = self.ssl_context.wrap_socket(request, server_side=True)
        super().finish_request(request, client_address)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Failed handshakes and dropped connections are expected in these tests."""

    def start(self) -> LoopbackServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.shutdown()
        self.server_close()
        self._thread.join(timeout=5)


# ---------------------------------------------------------------- TLS material


@dataclass(frozen=True)
class TlsMaterial:
    """A private CA, its server certificate and a client certificate, as files."""

    ca: trustme.CA
    ca_file: Path
    client_cert_file: Path
    client_key_file: Path
    client_encrypted_key_file: Path
    server_cert: trustme.LeafCert

    def server_context(self, *, require_client_cert: bool = False) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.server_cert.configure_cert(context)
        if require_client_cert:
            self.ca.configure_trust(context)
            context.verify_mode = ssl.CERT_REQUIRED
        return context


def make_tls_material(directory: Path) -> TlsMaterial:
    """Issue the CA, server and client certificates into ``directory``."""
    ca = trustme.CA()
    server_cert = ca.issue_cert("localhost", "127.0.0.1", "::1")
    client = ca.issue_cert("client@pmrunner.test")
    ca_file = directory / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    cert_file, key_file = directory / "client.pem", directory / "client.key"
    client.cert_chain_pems[0].write_to_path(str(cert_file))
    client.private_key_pem.write_to_path(str(key_file))
    encrypted_file = directory / "client-encrypted.key"
    key = serialization.load_pem_private_key(client.private_key_pem.bytes(), password=None)
    encrypted_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(CLIENT_KEY_PASSPHRASE.encode()),
        )
    )
    return TlsMaterial(ca, ca_file, cert_file, key_file, encrypted_file, server_cert)


# ---------------------------------------------------------------------- proxy


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class ForwardProxyHandler(BaseHTTPRequestHandler):
    """A forwarding proxy that only reaches loopback: absolute-form requests and CONNECT."""

    protocol_version = "HTTP/1.1"
    server: LoopbackServer

    def __getattr__(self, name: str) -> Any:
        if name.startswith("do_"):
            return self._forward
        raise AttributeError(name)

    def log_message(self, format: str, *args: Any) -> None:
        """Keep test output quiet."""

    def do_CONNECT(self) -> None:
        self.server.seen.append(("CONNECT", self.path))
        host, _, port = self.path.rpartition(":")
        if not _is_loopback(host):
            self._refuse()
            return
        with socket.create_connection((host.strip("[]"), int(port)), timeout=10) as upstream:
            self.send_response(200, "Connection established")
            self.end_headers()
            self._pipe(self.connection, upstream)
        self.close_connection = True

    def _forward(self) -> None:
        self.server.seen.append((self.command, self.path))
        target = urlsplit(self.path)
        if target.scheme != "http" or not _is_loopback(target.hostname or ""):
            self._refuse()
            return
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        headers = {k: v for k, v in self.headers.items() if not k.lower().startswith("proxy-")}
        upstream = HTTPConnection(target.hostname or "", target.port or 80, timeout=10)
        try:
            path = target.path + (f"?{target.query}" if target.query else "")
            upstream.request(self.command, path or "/", body=body, headers=headers)
            answer = upstream.getresponse()
            payload = answer.read()
        finally:
            upstream.close()
        self.send_response(answer.status, answer.reason)
        for key, value in answer.getheaders():
            if key.lower() not in ("content-length", "connection", "transfer-encoding"):
                self.send_header(key, value)
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(payload)
        self.close_connection = True

    def _refuse(self) -> None:
        self.send_response(403, "Only loopback")
        self.send_header("Content-Length", "0")
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True

    @staticmethod
    def _pipe(client: socket.socket, upstream: socket.socket) -> None:
        sockets = [client, upstream]
        for _ in range(100_000):  # bounded relay; ends when either side closes or idles
            readable, _, _ = select.select(sockets, [], [], 10)
            if not readable:
                return
            for source in readable:
                data = source.recv(65536)
                if not data:
                    return
                (upstream if source is client else client).sendall(data)


# -------------------------------------------------------------------- fixtures


@pytest.fixture(scope="session")
def tls_material(tmp_path_factory: pytest.TempPathFactory) -> TlsMaterial:
    return make_tls_material(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="session")
def http_server() -> Iterator[LoopbackServer]:
    server = LoopbackServer().start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def https_server(tls_material: TlsMaterial) -> Iterator[LoopbackServer]:
    server = LoopbackServer(ssl_context=tls_material.server_context()).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def mtls_server(tls_material: TlsMaterial) -> Iterator[LoopbackServer]:
    """An HTTPS server that requires a client certificate issued by the test CA."""
    context = tls_material.server_context(require_client_cert=True)
    server = LoopbackServer(ssl_context=context).start()
    yield server
    server.stop()


@pytest.fixture()
def proxy_server() -> Iterator[LoopbackServer]:
    """A fresh forwarding proxy per test, so ``seen`` holds only that test's traffic."""
    server = LoopbackServer(ForwardProxyHandler).start()
    yield server
    server.stop()


@pytest.fixture()
def no_proxy_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Clear proxy variables, so loopback tests never leave through a proxy."""
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
