"""The demo API that ``pmrunner up --demo`` monitors, and where the bundled examples live.

A small shop on loopback (standard library only): ``GET /health``,
``GET /products``, ``POST /orders`` and ``GET /orders/<id>`` answer as a
healthy API would; ``GET /payments/status`` answers 503, so the example
monitor that checks it fails on purpose. ``pmrunner demo-api`` serves it on
its own (the Docker Compose demo targets use that).
"""

from __future__ import annotations

import itertools
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import click

import pmrunner

PRODUCTS = [
    {"id": 1, "name": "Espresso beans, 1 kg", "price": 24.5, "stock": 12},
    {"id": 2, "name": "Milk frother", "price": 39.0, "stock": 3},
    {"id": 3, "name": "Paper filters (100)", "price": 4.2, "stock": 80},
]


def examples_folder() -> Path:
    """The bundled ``examples/`` folder: inside the installed package, else the source tree."""
    package = Path(pmrunner.__file__).resolve().parent
    for candidate in (package / "examples", package.parent / "examples"):
        if (candidate / "monitors.yaml").is_file():
            return candidate
    raise FileNotFoundError("the bundled examples/ folder is missing from this installation")


class DemoHandler(BaseHTTPRequestHandler):
    """The demo shop's endpoints; orders live in the server object."""

    protocol_version = "HTTP/1.1"
    server_version = "pmrunner-demo/1"
    server: DemoServer

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the runner's own output tells what happened."""

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0].rstrip("/") or "/"
        if path == "/health":
            self._answer(200, {"status": "ok", "service": "demo-shop", "site": self.server.site})
        elif path == "/products":
            self._answer(200, {"products": PRODUCTS})
        elif path.startswith("/orders/"):
            order = self.server.orders.get(path.removeprefix("/orders/"))
            self._answer(200 if order else 404, order or {"error": "no such order"})
        elif path == "/payments/status":
            self._answer(503, {"status": "down", "error": "payment provider unreachable"})
        else:
            self._answer(404, {"error": f"no route {path}"})

    def do_POST(self) -> None:
        if self.path.rstrip("/") != "/orders":
            self._answer(404, {"error": f"no route {self.path}"})
            return
        length = int(self.headers.get("Content-Length") or 0)
        try:
            body = json.loads(self.rfile.read(length) or b"{}")
        except ValueError:
            self._answer(400, {"error": "the body is not JSON"})
            return
        order = {"id": str(next(self.server.order_ids)), "status": "placed", "items": body}
        self.server.orders[order["id"]] = order
        self._answer(201, order)

    def _answer(self, status: int, payload: dict[str, Any]) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


class DemoServer(ThreadingHTTPServer):
    """The demo shop's HTTP server.

    Parameters:
        address: (host, port) to listen on; port 0 picks a free one.
        site: a name the health endpoint reports (tells demo targets apart).
    """

    daemon_threads = True

    def __init__(self, address: tuple[str, int], site: str = "demo") -> None:
        super().__init__(address, DemoHandler)
        self.site = site
        self.orders: dict[str, dict[str, Any]] = {}
        self.order_ids = itertools.count(1001)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host!s}:{port}"


@contextmanager
def demo_api(host: str = "127.0.0.1", port: int = 0) -> Iterator[DemoServer]:
    """Serve the demo API in a background thread while the block runs."""
    server = DemoServer((host, port))
    thread = threading.Thread(target=server.serve_forever, name="demo-api", daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


@click.command("demo-api")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True)
@click.option("--site", default="demo", show_default=True, help="Name /health reports.")
def demo_api_command(host: str, port: int, site: str) -> None:
    """Serve the demo shop API that the bundled example monitors check."""
    try:
        server = DemoServer((host, port), site)
    except OSError as error:
        raise click.ClickException(f"cannot listen on {host}:{port}: {error.strerror}") from None
    click.echo(f"demo API ({site}) on {server.url}")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
