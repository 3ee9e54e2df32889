"""A loopback echo server shaped like postman-echo, for collections in tests and benchmarks.

Endpoints (JSON answers): /get, /post, /put, /patch, /delete (and any method
on /anything), /headers, /status/<code>, /delay/<ms>, /cookies,
/cookies/set?k=v, /cookies/delete?k, /redirect-to?url=&status_code=,
/basic-auth (postman:password), /gzip, /deflate, /brotli, /response-headers?k=v,
/xml. Run standalone with ``python -m tests.echo_server --port 0`` (``--host`` picks
the address to bind; 127.0.0.1 by default).
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import gzip
import json
import threading
import time
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import brotli

JSON = dict[str, Any]


class EchoHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "echo/1"
    # One write per response and no Nagle: otherwise delayed ACKs add ~40 ms a request.
    wbufsize = 64 * 1024
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _send(
        self,
        code: int,
        payload: Any,
        headers: list[tuple[str, str]] | None = None,
        encoding: str | None = None,
    ) -> None:
        body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        if encoding == "gzip":
            body = gzip.compress(body)
        elif encoding == "deflate":
            body = zlib.compress(body)
        elif encoding == "br":
            body = brotli.compress(body)
        self.send_response(code)
        content_type = "application/json; charset=utf-8"
        for key, value in headers or []:
            if key.lower() == "content-type":
                content_type = value
            else:
                self.send_header(key, value)
        self.send_header("Content-Type", content_type)
        if encoding:
            self.send_header("Content-Encoding", encoding)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _cookies(self) -> dict[str, str]:
        found: dict[str, str] = {}
        for part in (self.headers.get("Cookie") or "").split(";"):
            if "=" in part:
                key, value = part.strip().split("=", 1)
                found[key] = value
        return found

    def _echo(self, body: bytes) -> JSON:
        url = urlsplit(self.path)
        content_type = self.headers.get("Content-Type") or ""
        text = body.decode("utf-8", errors="replace")
        parsed_json = None
        form: dict[str, str] = {}
        if "json" in content_type:
            try:
                parsed_json = json.loads(text)
            except ValueError:
                parsed_json = None
        elif "x-www-form-urlencoded" in content_type:
            form = dict(parse_qsl(text, keep_blank_values=True))
        return {
            "args": dict(parse_qsl(url.query, keep_blank_values=True)),
            "data": parsed_json if parsed_json is not None else (text if not form else ""),
            "form": form,
            "json": parsed_json,
            "headers": {k.lower(): v for k, v in self.headers.items()},
            "method": self.command,
            "url": f"http://{self.headers.get('Host')}{self.path}",
            "rawBody": base64.b64encode(body).decode(),
        }

    def _route(self) -> None:
        body = self._read_body()
        url = urlsplit(self.path)
        path, query = url.path, dict(parse_qsl(url.query, keep_blank_values=True))
        if path.startswith("/status/"):
            code = int(path.rsplit("/", 1)[1])
            self._send(code, {"status": code})
        elif path.startswith("/delay/"):
            time.sleep(min(float(path.rsplit("/", 1)[1]), 10_000) / 1000)
            self._send(200, {"delay": path.rsplit("/", 1)[1]})
        elif path == "/headers":
            self._send(200, {"headers": {k.lower(): v for k, v in self.headers.items()}})
        elif path == "/cookies":
            self._send(200, {"cookies": self._cookies()})
        elif path == "/cookies/set":
            headers = [("Set-Cookie", f"{k}={v}; Path=/") for k, v in query.items()]
            self._send(302, {"cookies": query}, [*headers, ("Location", "/cookies")])
        elif path == "/cookies/delete":
            expired = "Expires=Thu, 01 Jan 1970 00:00:00 GMT; Path=/"
            headers = [("Set-Cookie", f"{k}=; {expired}") for k in query]
            self._send(302, {}, [*headers, ("Location", "/cookies")])
        elif path == "/redirect-to":
            status = int(query.get("status_code") or 302)
            self._send(status, {}, [("Location", query.get("url", "/get"))])
        elif path == "/basic-auth":
            expected = "Basic " + base64.b64encode(b"postman:password").decode()
            ok = self.headers.get("Authorization") == expected
            self._send(200 if ok else 401, {"authenticated": ok})
        elif path in ("/gzip", "/deflate", "/brotli"):
            encoding = {"/gzip": "gzip", "/deflate": "deflate", "/brotli": "br"}[path]
            self._send(200, {encoding: True, **self._echo(body)}, encoding=encoding)
        elif path == "/response-headers":
            self._send(200, query, list(query.items()))
        elif path == "/xml":
            xml = (
                b"<?xml version='1.0'?><root><item id='1'>one</item><item id='2'>two</item></root>"
            )
            self._send(200, xml, [("Content-Type", "application/xml")])
        else:
            self._send(200, self._echo(body))

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = do_HEAD = _route
    do_PURGE = do_PROPFIND = do_LINK = do_UNLINK = do_COPY = do_LOCK = do_UNLOCK = _route


class EchoServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


@contextmanager
def serve(port: int = 0, handler: type[BaseHTTPRequestHandler] = EchoHandler) -> Iterator[str]:
    """Run a server (the echo server by default) on 127.0.0.1 for the ``with`` block.

    Yields its base URL; other tests' small servers pass their own ``handler``.
    """
    server = EchoServer(("127.0.0.1", port), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    server = EchoServer((args.host, args.port), EchoHandler)
    print(f"http://{args.host}:{server.server_address[1]}", flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        server.serve_forever()


if __name__ == "__main__":
    main()
