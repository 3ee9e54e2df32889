"""Who may call the API, and how often: the API key check and the rate limit.

Every endpoint but the open ones (``/health``, ``/metrics``) needs the key
of ``PMRUNNER_API_KEY`` in the ``x-api-key`` header; Run a Monitor also
takes it as the ``apikey`` query parameter, as Postman's API does. Keys
are compared in constant time.

The rate limit counts the requests of one client: requests with the valid
key count against that key, all others against the caller's address, so
guessing keys is limited too. A client over the limit gets 429 before its
key is even looked at.
"""

from __future__ import annotations

import hmac
import re

from starlette.datastructures import Headers, QueryParams
from starlette.types import ASGIApp, Receive, Scope, Send

from api.errors import rate_limited, unauthorized
from api.ratelimit import ClientRateLimiter

OPEN_PATHS = frozenset({"/health", "/metrics"})
# Run a Monitor: the one endpoint that also takes the key as ?apikey=.
_RUN_MONITOR_PATH = re.compile(r"^/monitors/[^/]+/run/?$")


def key_matches(presented: str | None, expected: str) -> bool:
    """Whether ``presented`` is ``expected``, compared in constant time."""
    if presented is None:
        return False
    return hmac.compare_digest(presented.encode(), expected.encode())


def presented_key(scope: Scope) -> str | None:
    """The API key a request carries: the header, or ``apikey`` on Run a Monitor."""
    key = Headers(scope=scope).get("x-api-key")
    if key is None and scope["method"] == "POST" and _RUN_MONITOR_PATH.match(scope["path"]):
        key = QueryParams(scope.get("query_string", b"")).get("apikey")
    return key


def client_address(scope: Scope) -> str:
    """The caller's address, as the server saw it (or behind a trusted proxy, reported)."""
    client = scope.get("client")
    return str(client[0]) if client else "unknown"


class AccessGuard:
    """ASGI middleware: rate limit, then API key, before any endpoint runs.

    Parameters:
        app: the application it guards.
        api_key: the key clients must send; None serves without authentication.
        limiter: the per-client rate limiter; None for no limit.
        open_paths: paths served to anyone, without a key or a limit.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        api_key: str | None,
        limiter: ClientRateLimiter | None,
        open_paths: frozenset[str] = OPEN_PATHS,
    ) -> None:
        self.app = app
        self.api_key = api_key
        self.limiter = limiter
        self.open_paths = open_paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in self.open_paths:
            await self.app(scope, receive, send)
            return
        authenticated = self.api_key is None or key_matches(presented_key(scope), self.api_key)
        if self.limiter is not None:
            # One bucket for the key: its clients share it, as they share the key.
            client = "api-key" if authenticated and self.api_key else client_address(scope)
            retry_after = self.limiter.check(client)
            if retry_after is not None:
                await rate_limited(retry_after)(scope, receive, send)
                return
        if not authenticated:
            await unauthorized()(scope, receive, send)
            return
        await self.app(scope, receive, send)
