"""The HTTP API application: routes, middleware and error handlers.

    from api.app import create_api
    app = create_api(Settings.from_env())     # an ASGI app, served by uvicorn

Endpoints:

- ``GET /health``, ``GET /metrics``: open to anyone;
- ``POST /monitors/{monitor_uid}/run``: Postman's Run a Monitor;
- ``GET /monitors`` and ``GET /monitors/{monitor_uid}``: monitors with their
  schedule, next slot and last run;
- ``GET /collections/{collectionId}/runs`` and ``.../runs/{runId}``: the
  Collection Runs API;
- ``GET /openapi.json``: the OpenAPI document of all of them.
"""

from __future__ import annotations

import logging

import redis
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.routing import Route

from api.access_log import AccessLog
from api.auth import AccessGuard
from api.context import ApiContext
from api.errors import (
    ApiError,
    handle_api_error,
    handle_http_exception,
    handle_redis_error,
    handle_unexpected,
)
from api.health import health, metrics, openapi
from api.monitor_list import get_monitor, list_monitors
from api.monitors import run_monitor
from api.ratelimit import ClientRateLimiter
from api.runs import get_run, list_runs
from pmrunner.errors import ConfigurationError
from worker.settings import Settings

log = logging.getLogger("pmrunner.api")

NO_KEY = (
    "PMRUNNER_API_KEY is not set: the HTTP API does not start without an API key. "
    "Set PMRUNNER_API_KEY, or pass --insecure-no-auth to serve without authentication "
    "(anyone who reaches the port can then start runs and read reports)."
)
RATE_LIMIT_PERIOD = 60.0

ROUTES = [
    Route("/health", health, methods=["GET"]),
    Route("/metrics", metrics, methods=["GET"]),
    Route("/openapi.json", openapi, methods=["GET"]),
    Route("/monitors", list_monitors, methods=["GET"]),
    Route("/monitors/{monitor_uid}", get_monitor, methods=["GET"]),
    Route("/monitors/{monitor_uid}/run", run_monitor, methods=["POST"]),
    Route("/collections/{collectionId}/runs", list_runs, methods=["GET"]),
    Route("/collections/{collectionId}/runs/{runId}", get_run, methods=["GET"]),
]


def create_api(settings: Settings | None = None, *, insecure_no_auth: bool = False) -> Starlette:
    """The API for ``settings`` (from the environment by default).

    Parameters:
        settings: Redis, monitor source, ``api_key`` and ``api_rate_limit``.
        insecure_no_auth: serve without an API key; only allowed, and only
            needed, when ``settings.api_key`` is not set.

    Raises:
        ConfigurationError: no API key is set and ``insecure_no_auth`` is false,
            or the rate limit is negative.
    """
    settings = settings or Settings.from_env()
    if not settings.api_key and not insecure_no_auth:
        raise ConfigurationError(NO_KEY)
    from worker.app import create_app  # imported late: it builds a default app on import

    if not settings.api_key:
        log.warning("the HTTP API serves WITHOUT authentication (--insecure-no-auth)")
    app = Starlette(
        routes=ROUTES,
        middleware=[
            Middleware(AccessLog),
            Middleware(
                AccessGuard, api_key=settings.api_key or None, limiter=rate_limiter(settings)
            ),
        ],
        exception_handlers={
            ApiError: handle_api_error,
            HTTPException: handle_http_exception,
            redis.RedisError: handle_redis_error,
            Exception: handle_unexpected,
        },
    )
    app.state.context = ApiContext.build(settings, create_app(settings))
    return app


def rate_limiter(settings: Settings) -> ClientRateLimiter | None:
    """The per-client limiter of ``settings.api_rate_limit`` requests a minute; None for 0."""
    if settings.api_rate_limit < 0:
        raise ConfigurationError(
            f"PMRUNNER_API_RATE_LIMIT must be 0 (no limit) or more, got {settings.api_rate_limit}"
        )
    if settings.api_rate_limit == 0:
        return None
    return ClientRateLimiter(settings.api_rate_limit, RATE_LIMIT_PERIOD)
