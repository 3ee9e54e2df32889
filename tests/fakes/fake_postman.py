"""A fake Postman API on loopback, for tests of everything that talks to Postman.

It is a real HTTP server (``ThreadingHTTPServer`` on 127.0.0.1, a free port,
in a thread) that serves the endpoints a monitor runner uses, from data held
in memory:

- ``GET /monitors`` with cursor pagination (``limit`` max 25,
  ``meta.nextCursor``) and the ``workspace`` and ``active`` filters,
- ``GET /monitors/{uid}`` (404 for an unknown uid),
- ``GET /collections`` (summaries with ``updatedAt``) and
  ``GET /collections/{uid}`` (``{"collection": {...}}`` with ``info.updatedAt``),
- ``GET /environments/{uid}``,
- 400 ``instanceNotFoundError`` for unknown collection and environment uids,
- ``GET /environments`` (summaries with ``updatedAt``) and ``GET /me``,
- 401 ``AuthenticationError`` for a missing or wrong ``X-Api-Key``,
- Postman's rate limits per API key, shared by every client of the key
  (300 calls a minute, 10 calls in 10 s to monitor endpoints; see
  :mod:`tests.fakes.postman_limits`), answered with 429 and ``Retry-After``.

Faults come one answer at a time (``fail_next``...) or as an outage that
lasts until :meth:`FakePostman.end_outage`: 500s in either error format,
hangs, malformed or truncated bodies, dropped connections, a revoked key,
an exhausted monthly budget (``serviceLimitExhausted``).

Tests add, edit and remove data (the methods of
:class:`tests.fakes.postman_store.PostmanStore`), inject faults (error statuses, 429s, slow or
malformed answers, the whole server down) and assert on :attr:`FakePostman.requests`::

    with FakePostman() as postman:
        collection_uid = postman.add_collection(name="Health")
        postman.add_monitor("Health every minute", collection_uid=collection_uid)
        postman.rate_limit_next(1, retry_after="2")
        ...
        assert postman.requests[0].headers["x-api-key"] == postman.api_key

The ``fake_postman`` fixture below yields a started server; import it into a
test module to use it.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import pytest

from tests.fakes.postman_limits import Limit, RateLimits
from tests.fakes.postman_store import PostmanStore, error_body

__all__ = [
    "DEFAULT_API_KEY",
    "OUTAGES",
    "FakePostman",
    "Fault",
    "RecordedRequest",
    "fake_postman",
]

DEFAULT_API_KEY = "PMAK-fake0000000000000000-0123456789abcdef"
FOREVER = 1 << 62

# Outage kinds (see FakePostman.start_outage).
OUTAGES = ("500", "503-flat", "hang", "malformed", "truncated", "dropped", "revoked", "exhausted")


@dataclass(frozen=True)
class RecordedRequest:
    """One request the fake received.

    ``path`` is the decoded path without the query; ``target`` is the request
    target exactly as sent (an absolute URL when it came through as a proxy);
    header names are lower-cased.
    """

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    target: str
    at: float = 0.0  # time.time() when it came in

    def param(self, name: str) -> str | None:
        """The first value of query parameter ``name``, or None."""
        values = self.query.get(name)
        return values[0] if values else None


@dataclass
class Fault:
    """An answer to give instead of the normal one, ``count`` times.

    ``delay`` seconds pass before answering; with ``status`` None the normal
    answer follows the delay. ``truncate`` cuts the normal answer's body short
    of its Content-Length; ``drop`` hangs up without answering. ``path`` limits
    the fault to paths starting with it.
    """

    count: int
    status: int | None = None
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    path: str | None = None
    truncate: bool = False
    drop: bool = False

    def applies_to(self, path: str) -> bool:
        return self.path is None or path.startswith(self.path)


@dataclass
class _Answer:
    status: int
    body: bytes
    headers: dict[str, str]
    missing_bytes: int = 0  # announced in Content-Length but never sent


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    fake: FakePostman

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients that time out hang up mid-answer; that is expected here.
        pass


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    # HTTP/1.0: one request per connection, so "down" really means down.
    protocol_version = "HTTP/1.0"

    def do_GET(self) -> None:
        answer = self.server.fake.handle(self.command, self.path, dict(self.headers.items()))
        if answer is None:  # the server is stopping, or drops this connection
            self.close_connection = True
            return
        self.send_response(answer.status)
        for name, value in answer.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(answer.body) + answer.missing_bytes))
        self.end_headers()
        self.wfile.write(answer.body)

    do_POST = do_PUT = do_DELETE = do_GET

    def log_message(self, format: str, *args: Any) -> None:
        pass


class FakePostman(PostmanStore):
    """The fake Postman API server; its data methods come from :class:`PostmanStore`.

    Args:
        api_key: the only key it accepts.
        per_minute_limit: calls per key allowed in any 60 s (Postman: 300);
            None for no limit.
        monitor_calls_per_10s: calls per key to monitor endpoints allowed in
            any 10 s (Postman: 10); None for no limit.
        clock: the clock of the rate limits, so tests can move time on.
    """

    def __init__(
        self,
        api_key: str = DEFAULT_API_KEY,
        *,
        per_minute_limit: int | None = 300,
        monitor_calls_per_10s: int | None = 10,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        self.api_key = api_key
        limits = []
        if per_minute_limit is not None:
            limits.append(Limit(per_minute_limit, 60.0))
        if monitor_calls_per_10s is not None:
            limits.append(Limit(monitor_calls_per_10s, 10.0, "/monitors"))
        self.limits = RateLimits(limits, clock)
        self._refused_keys: set[str] = set()
        self._exhausted = False
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._port = 0
        self._faults: list[Fault] = []
        self._requests: list[RecordedRequest] = []

    # -- lifecycle ----------------------------------------------------------------

    def start(self) -> FakePostman:
        """Start listening on a free port of 127.0.0.1 (or the previous port)."""
        if self._server is not None:
            return self
        self._stopping.clear()
        server = _Server(("127.0.0.1", self._port), _Handler)
        server.fake = self
        self._port = server.server_address[1]
        self._server = server
        # A short poll interval keeps stop() quick: shutdown() waits for one poll.
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.02}, name="fake-postman"
        )
        self._thread.daemon = True
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop listening; connections to the port are refused from now on."""
        server, thread = self._server, self._thread
        if server is None:
            return
        self._stopping.set()  # wakes slow answers
        server.shutdown()
        server.server_close()
        if thread is not None:
            thread.join(timeout=5)
        self._server = self._thread = None

    def go_down(self) -> None:
        """Close the listener: connections are refused until :meth:`come_up`."""
        self.stop()

    def come_up(self) -> None:
        """Listen again, on the same port as before."""
        self.start()

    def __enter__(self) -> FakePostman:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if not self._port:
            raise RuntimeError("FakePostman is not started")
        return self._port

    @property
    def url(self) -> str:
        """The base URL to give a client: ``http://127.0.0.1:<port>``."""
        return f"http://127.0.0.1:{self.port}"

    # -- faults -------------------------------------------------------------------

    def fail_next(
        self,
        count: int = 1,
        status: int = 500,
        *,
        body: bytes | dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        content_type: str = "application/json",
        path: str | None = None,
    ) -> None:
        """Answer the next ``count`` requests (to ``path``...) with ``status``.

        ``body`` defaults to ``{"error": {"name": "serverError", "message": ...}}``.
        """
        if body is None:
            body = error_body("serverError", f"Injected failure with status {status}")
        raw = json.dumps(body).encode() if isinstance(body, dict) else body
        all_headers = {"Content-Type": content_type, **(headers or {})}
        self._add_fault(Fault(count, status, raw, all_headers, path=path))

    def rate_limit_next(
        self, count: int = 1, retry_after: str | None = "1", *, path: str | None = None
    ) -> None:
        """Answer the next ``count`` requests with 429 and ``Retry-After`` (seconds or a date)."""
        headers = {"Retry-After": retry_after} if retry_after is not None else {}
        body = {"error": "rateLimited", "message": "Rate limit exceeded. Please retry later."}
        self.fail_next(count, 429, body=body, headers=headers, path=path)

    def malformed_next(
        self,
        count: int = 1,
        status: int = 200,
        body: bytes = b"<html><body>Bad gateway</body></html>",
        *,
        path: str | None = None,
    ) -> None:
        """Answer the next ``count`` requests with a body that is not JSON."""
        self.fail_next(count, status, body=body, content_type="text/html", path=path)

    def slow_next(self, count: int = 1, delay: float = 1.0, *, path: str | None = None) -> None:
        """Wait ``delay`` seconds before giving the next ``count`` requests their answer."""
        self._add_fault(Fault(count, delay=delay, path=path))

    def truncate_next(self, count: int = 1, *, path: str | None = None) -> None:
        """Cut the body of the next ``count`` answers short, then hang up."""
        self._add_fault(Fault(count, truncate=True, path=path))

    def drop_next(self, count: int = 1, *, path: str | None = None) -> None:
        """Hang up on the next ``count`` requests without answering."""
        self._add_fault(Fault(count, drop=True, path=path))

    def start_outage(self, kind: str, *, hang_seconds: float = 45.0) -> None:
        """Fail every request from now until :meth:`end_outage`, in one of :data:`OUTAGES`.

        ``500``: Postman's ``{"error": {"name", "message"}}``; ``503-flat``: the
        ``{"error": "name", "message"}`` format; ``hang``: answer after
        ``hang_seconds``; ``malformed``: 200 with HTML; ``truncated``: bodies
        cut short; ``dropped``: connections closed unanswered; ``revoked``:
        the key is refused (401); ``exhausted``: the monthly budget is spent.
        """
        if kind == "revoked":
            with self._lock:
                self._refused_keys.add(self.api_key)
            return
        if kind == "exhausted":
            with self._lock:
                self._exhausted = True
            return
        flat = {"error": "serviceUnavailable", "message": "Service temporarily unavailable"}
        faults = {
            "500": lambda: self.fail_next(FOREVER, 500),
            "503-flat": lambda: self.fail_next(FOREVER, 503, body=flat),
            "hang": lambda: self.slow_next(FOREVER, hang_seconds),
            "malformed": lambda: self.malformed_next(FOREVER),
            "truncated": lambda: self.truncate_next(FOREVER),
            "dropped": lambda: self.drop_next(FOREVER),
        }
        if kind not in faults:
            raise ValueError(f"unknown outage {kind!r}; one of {', '.join(OUTAGES)}")
        faults[kind]()

    def end_outage(self) -> None:
        """Serve normally again: faults cleared, the key accepted, the budget restored."""
        with self._lock:
            self._faults.clear()
            self._refused_keys.clear()
            self._exhausted = False

    clear_faults = end_outage

    @property
    def rate_limited(self) -> int:
        """How many calls were answered 429 because a client went over the limits."""
        with self._lock:
            return self.limits.hits

    def _add_fault(self, fault: Fault) -> None:
        if fault.count < 1:
            raise ValueError(f"fault count must be at least 1, got {fault.count}")
        with self._lock:
            self._faults.append(fault)

    # -- recorded requests --------------------------------------------------------

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request received since the start or :meth:`clear_requests`, oldest first."""
        with self._lock:
            return list(self._requests)

    def requests_to(self, path_prefix: str) -> list[RecordedRequest]:
        """The recorded requests whose path starts with ``path_prefix``."""
        return [request for request in self.requests if request.path.startswith(path_prefix)]

    def clear_requests(self) -> None:
        with self._lock:
            self._requests.clear()

    # -- serving ------------------------------------------------------------------

    def handle(self, method: str, target: str, headers: dict[str, str]) -> _Answer | None:
        """Record a request and compute its answer; None when stopping mid-delay."""
        parts = urlsplit(target)
        path = unquote(parts.path)
        query = parse_qs(parts.query)
        lowered = {name.lower(): value for name, value in headers.items()}
        key = lowered.get("x-api-key") or ""
        with self._lock:
            recorded = RecordedRequest(method, path, query, lowered, target, time.time())
            self._requests.append(recorded)
            limited = self.limits.check(key, path)
            fault = self._take_fault(path) if limited is None else None
        if limited is not None:
            return _Answer(*limited)
        if fault is not None and fault.drop:
            return None
        if fault is not None and fault.delay and self._stopping.wait(fault.delay):
            return None
        if fault is not None and fault.status is not None:
            return _Answer(fault.status, fault.body, fault.headers)
        answer = self._route(method, path, query, lowered.get("x-api-key"))
        if fault is not None and fault.truncate:
            answer.missing_bytes = 100
        return answer

    def _take_fault(self, path: str) -> Fault | None:
        """Use up one count of the first fault that applies to ``path``."""
        for fault in self._faults:
            if fault.applies_to(path):
                fault.count -= 1
                if fault.count == 0:
                    self._faults.remove(fault)
                return fault
        return None

    def _route(
        self, method: str, path: str, query: dict[str, list[str]], api_key: str | None
    ) -> _Answer:
        """Check the key, then answer from the store."""
        if not api_key:
            message = "API Key missing. Every request requires an API Key to be sent."
            return _json(401, error_body("AuthenticationError", message))
        if api_key != self.api_key or api_key in self._refused_keys:
            message = "Invalid API Key. Every request requires a valid API Key to be sent."
            return _json(401, error_body("AuthenticationError", message))
        if self._exhausted:
            message = "You've reached your monthly limit of Postman API calls."
            return _json(429, error_body("serviceLimitExhausted", message))
        if method != "GET":
            return _json(405, error_body("methodNotAllowed", f"{method} is not served here"))
        return _json(*self.answer_get(path, query))


@pytest.fixture
def fake_postman() -> Iterator[FakePostman]:
    """A started :class:`FakePostman`, stopped after the test."""
    with FakePostman() as server:
        yield server


def _json(status: int, body: dict[str, Any]) -> _Answer:
    return _Answer(status, json.dumps(body).encode(), {"Content-Type": "application/json"})
