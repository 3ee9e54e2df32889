"""The API's error answers, in the Postman API's shapes.

Most errors are ``{"error": {"name": ..., "message": ...}}``; a rate-limited
request gets ``{"error": "rateLimited", "message": ...}`` with ``Retry-After``,
as the Collection Runs API describes. Handlers raise :class:`ApiError`; the
exception handlers below turn it, Starlette's routing errors and anything
unexpected into those shapes, so no traceback ever reaches a client.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

log = logging.getLogger("pmrunner.api")

INVALID_API_KEY = "Invalid API Key. Every request requires a valid API Key to be sent."

# Names of errors for the status codes Starlette's router raises by itself.
_ROUTING_ERRORS = {
    404: ("notFoundError", "There is no such endpoint."),
    405: ("methodNotAllowedError", "This endpoint does not accept that method."),
}


class ApiError(Exception):
    """An error answer: a status code with a named error and a message.

    Parameters:
        status: the HTTP status code.
        name: the error's name (``instanceNotFoundError``, ``invalidParamError`` ...).
        message: what went wrong, for people; never holds a secret.
        headers: extra response headers.
    """

    def __init__(
        self,
        status: int,
        name: str,
        message: str,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.name = name
        self.message = message
        self.headers = dict(headers or {})

    def response(self) -> JSONResponse:
        """The error as a JSON response."""
        return error_response(self.status, self.name, self.message, self.headers)


def error_response(
    status: int, name: str, message: str, headers: Mapping[str, str] | None = None
) -> JSONResponse:
    """``{"error": {"name", "message"}}`` with ``status``."""
    body = {"error": {"name": name, "message": message}}
    return JSONResponse(body, status_code=status, headers=dict(headers or {}))


def unauthorized() -> JSONResponse:
    """401 for a missing or wrong API key (the same answer for both)."""
    return error_response(401, "AuthenticationError", INVALID_API_KEY)


def rate_limited(retry_after: float) -> JSONResponse:
    """429 with ``Retry-After`` in whole seconds (at least 1)."""
    seconds = max(1, math.ceil(retry_after))
    body = {
        "error": "rateLimited",
        "message": f"Rate limit exceeded. Try again in {seconds} seconds.",
    }
    return JSONResponse(body, status_code=429, headers={"Retry-After": str(seconds)})


def not_found(message: str) -> ApiError:
    """404 ``instanceNotFoundError``: a monitor, collection or run that does not exist."""
    return ApiError(404, "instanceNotFoundError", message)


def invalid_param(message: str) -> ApiError:
    """400 ``invalidParamError``: a query or path parameter with a wrong value."""
    return ApiError(400, "invalidParamError", message)


async def handle_api_error(request: Request, error: Exception) -> Response:
    """Exception handler for :class:`ApiError`."""
    assert isinstance(error, ApiError)
    return error.response()


async def handle_http_exception(request: Request, error: Exception) -> Response:
    """Exception handler for Starlette's own errors (no route, wrong method)."""
    assert isinstance(error, HTTPException)
    name, message = _ROUTING_ERRORS.get(error.status_code, ("httpError", str(error.detail)))
    return error_response(error.status_code, name, message, error.headers)


async def handle_redis_error(request: Request, error: Exception) -> Response:
    """Exception handler for Redis errors: 503, the run store is unavailable."""
    log.error("%s %s: Redis failed: %s", request.method, request.url.path, type(error).__name__)
    return error_response(
        503, "serviceUnavailableError", "The run store (Redis) does not answer; try again later."
    )


async def handle_unexpected(request: Request, error: Exception) -> Response:
    """Exception handler for anything else: a plain 500 for the client.

    The server logs the traceback (Starlette re-raises the error after this
    answer is sent); the log line here names the endpoint, never the query.
    """
    log.error("%s %s failed: %s", request.method, request.url.path, type(error).__name__)
    return error_response(500, "serverError", "The server could not complete this request.")
