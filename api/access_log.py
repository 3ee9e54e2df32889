"""One log line and one metric sample per API request.

The server's own access log is off: it prints query strings, and Run a
Monitor may carry the API key in one (``?apikey=``). These lines name the
path only, never the query or any header.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from prometheus_client import Counter, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.auth import client_address

log = logging.getLogger("pmrunner.api.access")

API_REQUESTS = Counter(
    "pmrunner_api_requests_total",
    "HTTP API requests answered, by method, endpoint and status code",
    ["method", "endpoint", "status"],
)
API_DURATION = Histogram(
    "pmrunner_api_request_duration_seconds",
    "Time the HTTP API took to answer, by endpoint",
    ["endpoint"],
    buckets=(0.005, 0.025, 0.1, 0.5, 2.5, 10, 60, 300, 900),
)


def endpoint_label(scope: Scope) -> str:
    """The route template that served the request (``/collections/{collectionId}/runs``).

    Templates, not paths, keep the metric's label values few; requests no
    route took (401, 429, 404) are ``unmatched``.
    """
    route: Any = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else "unmatched"


class AccessLog:
    """ASGI middleware that logs and counts each HTTP request once it is answered.

    Parameters:
        app: the application whose requests are logged.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # what the client gets if nothing is sent

        async def send_and_remember(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_and_remember)
        finally:
            elapsed = time.perf_counter() - started
            endpoint = endpoint_label(scope)
            API_REQUESTS.labels(scope["method"], endpoint, str(status)).inc()
            API_DURATION.labels(endpoint).observe(elapsed)
            log.info(
                "%s %s %s %d %.0fms",
                client_address(scope),
                scope["method"],
                scope["path"],
                status,
                elapsed * 1000,
            )
