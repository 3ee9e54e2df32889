"""One GET against the Postman API: throttled, retried, its errors made readable.

:class:`PostmanTransport` is the part of the Postman client that speaks HTTP.
It sends the API key on every call and never lets it out: not into logs, not
into exception messages (any text the server sends back is scrubbed of it),
not to another host (redirects are not followed).

Retry policy, per call:

- 429: wait what ``Retry-After`` (or Postman's rate-limit headers) says, or
  back off when nothing says; hold every other call of this client for as
  long; give up at once when the server asks for more than
  ``max_retry_after`` seconds, so a scheduler can reschedule instead of block.
- 5xx, connection errors, timeouts, bodies cut short: exponential backoff
  with jitter.
- Anything else: no retry.

After ``max_retries`` retries the last error is raised.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urlsplit

import requests

from pmrunner import __version__
from pmrunner.errors import (
    ConfigurationError,
    PostmanApiError,
    PostmanAuthError,
    PostmanNotFoundError,
    PostmanRateLimitError,
    PostmanResponseError,
    PostmanUnavailableError,
)
from runtime.egress_transport import egress_session
from scheduler.budget import Budget, BudgetExceeded, pause_from_headers
from scheduler.ratelimit import retry_after_seconds

__all__ = ["PERMANENT_ERROR_NAMES", "REDACTED", "PostmanTransport"]

logger = logging.getLogger("pmrunner.postman")

REDACTED = "<redacted>"

# Postman answers a missing collection or environment with 400 and this name.
_NOT_FOUND_NAMES = frozenset({"instanceNotFoundError", "notFound", "NotFoundError"})
_BODY_SNIPPET_CHARS = 200

# Error names that no retry cures: the monthly budget of the key is spent.
PERMANENT_ERROR_NAMES = frozenset({"serviceLimitExhausted"})

# An answer whose body broke off mid-way: worth a retry, like a lost connection.
_CutShort = requests.exceptions.ChunkedEncodingError


@dataclass(frozen=True)
class _Retry:
    """A failed attempt worth retrying, and the wait the server asked for, if any."""

    error: PostmanApiError
    wait: float | None


@dataclass(frozen=True)
class _ErrorBody:
    """What an error answer says about itself: a name and a message, each maybe."""

    name: str | None
    message: str | None


class PostmanTransport:
    """Sends GET requests to the Postman API with throttling and retries.

    Args:
        api_key: the Postman API key, sent as ``X-Api-Key``.
        base_url: the API root, ``http`` or ``https``.
        proxy: a proxy URL for both http and https; None leaves requests'
            environment proxy handling (``HTTPS_PROXY``, ``NO_PROXY``) in charge.
        timeout: seconds to connect and seconds between bytes read.
        max_retries: retries after the first attempt (0 = try once).
        budget: the rate budget every call draws from (one process's, or the
            cluster's in Redis).
        session: a requests session to use; one is made (and owned) when None.
        sleep: how to wait; tests pass a recorder.
        wall_clock: the Unix time, for HTTP dates and reset timestamps.
        backoff_base: the first backoff wait in seconds, doubled per retry.
        backoff_cap: the longest backoff wait in seconds.
        max_retry_after: the longest server-requested wait to sit through.
    """

    def __init__(
        self,
        api_key: str,
        *,
        base_url: str,
        proxy: str | None,
        timeout: float,
        max_retries: int,
        budget: Budget,
        session: requests.Session | None,
        sleep: Callable[[float], None],
        wall_clock: Callable[[], float],
        backoff_base: float,
        backoff_cap: float,
        max_retry_after: float,
    ) -> None:
        _check_settings(api_key, base_url, timeout, max_retries)
        self._api_key = api_key
        self.base_url = base_url.rstrip("/")
        self._proxies = {"http": proxy, "https": proxy} if proxy else None
        self._timeout = timeout
        self._max_retries = max_retries
        self._owns_session = session is None
        self._session = session if session is not None else egress_session()  # metadata denied
        self._sleep = sleep
        self._wall_clock = wall_clock
        self._backoff_base = backoff_base
        self._backoff_cap = backoff_cap
        self._max_retry_after = max_retry_after
        self._budget = budget

    def close(self) -> None:
        """Close the session if this transport made it."""
        if self._owns_session:
            self._session.close()

    def redact(self, text: str) -> str:
        """Return ``text`` with the API key replaced by a marker."""
        return text.replace(self._api_key, REDACTED)

    def get_json(
        self,
        path: str,
        params: Mapping[str, str] | None = None,
        *,
        resource: str | None = None,
    ) -> dict[str, Any]:
        """GET ``path`` and return its JSON object, retrying what is worth retrying.

        Args:
            path: the path under the base URL, starting with ``/``.
            params: query parameters.
            resource: what the path names, e.g. ``collection '1-abc'``, for
                the message of a not-found error.

        Raises:
            PostmanApiError: or one of its subclasses, once retries are spent.
        """
        endpoint = _endpoint("GET", path, params)
        for attempt in range(self._max_retries + 1):
            self._wait_for_slot(path, endpoint)
            outcome = self._attempt(path, params, endpoint, resource)
            if not isinstance(outcome, _Retry):
                return outcome
            if attempt == self._max_retries:
                raise outcome.error
            wait = outcome.wait if outcome.wait is not None else self._backoff(attempt)
            logger.warning(
                "%s failed (%s); retry %d of %d in %.2f s",
                endpoint,
                outcome.error,
                attempt + 1,
                self._max_retries,
                wait,
            )
            self._sleep(wait)
        raise AssertionError("unreachable: the last attempt returns or raises")

    def _attempt(
        self,
        path: str,
        params: Mapping[str, str] | None,
        endpoint: str,
        resource: str | None,
    ) -> dict[str, Any] | _Retry:
        """Make one attempt.

        Returns:
            The JSON object on success, or a :class:`_Retry` for a failure
            worth retrying.

        Raises:
            PostmanApiError: for a failure not worth retrying.
        """
        try:
            response = self._send(path, params)
        except requests.exceptions.SSLError as exc:
            raise PostmanUnavailableError(
                f"Postman API {endpoint}: TLS failed: {self.redact(str(exc))}", endpoint=endpoint
            ) from None
        except (requests.ConnectionError, requests.Timeout, _CutShort) as exc:
            kind = _failure_kind(exc)
            message = f"Postman API {endpoint} {kind}: {self.redact(str(exc))}"
            return _Retry(PostmanUnavailableError(message, endpoint=endpoint), None)
        except requests.RequestException as exc:
            raise PostmanApiError(
                f"Postman API {endpoint} failed: {self.redact(str(exc))}", endpoint=endpoint
            ) from None
        status = response.status_code
        logger.debug("%s answered %d", endpoint, status)
        if 200 <= status < 300:
            self._pause_if_spent(response, endpoint)
            return self._decode(response, endpoint)
        if 300 <= status < 400:
            raise self._redirect_error(response, endpoint)
        error = self._error_for(response, endpoint, resource)
        if (status != 429 and status < 500) or error.error_name in PERMANENT_ERROR_NAMES:
            raise error
        wait = retry_after_seconds(response.headers, self._wall_clock())
        if status == 429:
            wait = wait if wait is not None else self._backoff(0)
            self._budget.pause(wait, f"{endpoint} answered 429")
        if wait is not None and wait > self._max_retry_after:
            raise error
        return _Retry(error, wait)

    def _send(self, path: str, params: Mapping[str, str] | None) -> requests.Response:
        """Send one GET, with the key in its headers and redirects not followed."""
        headers = {
            "X-Api-Key": self._api_key,
            "Accept": "application/json",
            "User-Agent": f"pmrunner/{__version__}",
        }
        return self._session.get(
            self.base_url + path,
            params=dict(params) if params else None,
            headers=headers,
            timeout=self._timeout,
            proxies=self._proxies,  # passed per call: session-level proxies lose to the env
            allow_redirects=False,
        )

    def _wait_for_slot(self, path: str, endpoint: str) -> None:
        """Wait for the rate budget's slot for ``path``; refuse waits above ``max_retry_after``."""
        try:
            waited = self._budget.acquire(path, self._max_retry_after)
        except BudgetExceeded as exc:
            why = f" ({exc.reason})" if exc.reason else ""
            raise PostmanRateLimitError(
                f"Postman API {endpoint}: not called, the rate budget is paused for "
                f"{exc.wait:.0f} s{why}",
                endpoint=endpoint,
                retry_after=exc.wait,
            ) from None
        if waited:
            logger.debug("throttled %s for %.2f s", path, waited)

    def _pause_if_spent(self, response: requests.Response, endpoint: str) -> None:
        """Hold every call when the answer says the server's window is spent."""
        wait = pause_from_headers(response.headers, self._wall_clock())
        if wait:
            self._budget.pause(wait, f"{endpoint}: X-RateLimit-Remaining is 0")

    def _backoff(self, attempt: int) -> float:
        """Exponential backoff with "equal jitter": between half and all of the step."""
        step: float = min(self._backoff_cap, self._backoff_base * (2**attempt))
        return step / 2 + random.uniform(0, step / 2)

    def _decode(self, response: requests.Response, endpoint: str) -> dict[str, Any]:
        """Return the JSON object of a successful answer."""
        try:
            body = response.json()
        except ValueError:
            raise PostmanResponseError(
                f"Postman API {endpoint} answered {response.status_code} with a body that is "
                f"not JSON ({_content_type(response)}): {self._snippet(response)}",
                endpoint=endpoint,
                status=response.status_code,
            ) from None
        if not isinstance(body, dict):
            raise PostmanResponseError(
                f"Postman API {endpoint} answered {response.status_code} with JSON that is "
                f"not an object ({type(body).__name__})",
                endpoint=endpoint,
                status=response.status_code,
            )
        return body

    def _error_for(
        self, response: requests.Response, endpoint: str, resource: str | None
    ) -> PostmanApiError:
        """Turn an error answer into the matching PostmanApiError."""
        status = response.status_code
        body = _read_error_body(response)
        detail = self._error_detail(response, body)
        name = body.name
        if status == 404 or (status == 400 and name in _NOT_FOUND_NAMES):
            subject = resource or "such resource"
            return PostmanNotFoundError(
                f"Postman has no {subject}: {endpoint} answered {status} {detail}",
                endpoint=endpoint,
                status=status,
                error_name=name,
            )
        message = f"Postman API {endpoint} answered {status} {detail}"
        if status in (401, 403):
            return PostmanAuthError(message, endpoint=endpoint, status=status, error_name=name)
        if status == 429:
            retry_after = retry_after_seconds(response.headers, self._wall_clock())
            return PostmanRateLimitError(
                message, endpoint=endpoint, error_name=name, retry_after=retry_after
            )
        if status >= 500:
            return PostmanUnavailableError(
                message, endpoint=endpoint, status=status, error_name=name
            )
        return PostmanApiError(message, endpoint=endpoint, status=status, error_name=name)

    def _error_detail(self, response: requests.Response, body: _ErrorBody) -> str:
        """Describe an error answer in one line, scrubbed of the API key."""
        if body.name is None and body.message is None:
            return f"with a body that is not a known error format: {self._snippet(response)}"
        parts = [part for part in (body.name, body.message) if part]
        return self.redact(": ".join(parts))

    def _redirect_error(self, response: requests.Response, endpoint: str) -> PostmanResponseError:
        """A redirect is refused: following it would send the API key elsewhere."""
        location = self.redact(response.headers.get("Location", "(no Location)"))
        return PostmanResponseError(
            f"Postman API {endpoint} answered {response.status_code} redirecting to "
            f"{location}; not followed, so the API key goes nowhere else (check base_url)",
            endpoint=endpoint,
            status=response.status_code,
        )

    def _snippet(self, response: requests.Response) -> str:
        """The start of a response body, quoted and scrubbed, for messages."""
        text = response.content[:_BODY_SNIPPET_CHARS].decode("utf-8", "replace")
        if not text:
            return "(empty body)"
        more = "…" if len(response.content) > _BODY_SNIPPET_CHARS else ""
        return repr(self.redact(text)) + more

    def __repr__(self) -> str:
        return f"PostmanTransport(base_url={self.base_url!r}, api_key={REDACTED!r})"


def _check_settings(api_key: str, base_url: str, timeout: float, max_retries: int) -> None:
    """Reject settings the client cannot work with, naming the setting."""
    if not isinstance(api_key, str) or not api_key.strip():
        raise ConfigurationError("Postman client: the API key is empty")
    parts = urlsplit(base_url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigurationError(
            f"Postman client: base_url must be an http(s) URL, got {base_url!r}"
        )
    if timeout <= 0:
        raise ConfigurationError(f"Postman client: timeout must be positive, got {timeout}")
    if max_retries < 0:
        raise ConfigurationError(
            f"Postman client: max_retries must be 0 or more, got {max_retries}"
        )


def _endpoint(method: str, path: str, params: Mapping[str, str] | None) -> str:
    """Name a call for messages: ``GET /monitors?limit=25``."""
    query = f"?{urlencode(dict(params))}" if params else ""
    return f"{method} {path}{query}"


def _failure_kind(exc: Exception) -> str:
    """Say in a few words how a call failed without an answer."""
    if isinstance(exc, requests.Timeout):
        return "timed out"
    if isinstance(exc, _CutShort):
        return "was cut short"
    return "could not connect"


def _content_type(response: requests.Response) -> str:
    return response.headers.get("Content-Type") or "no Content-Type"


def _read_error_body(response: requests.Response) -> _ErrorBody:
    """Read Postman's error formats.

    ``{"error": {"name", "message"}}`` (most endpoints), ``{"error": "name",
    "message": "..."}`` (rate limits) and ``application/problem+json``
    (``{"type", "title", "detail", "status"}``). Anything else yields an
    empty :class:`_ErrorBody`.
    """
    try:
        body = response.json()
    except ValueError:
        return _ErrorBody(None, None)
    if not isinstance(body, dict):
        return _ErrorBody(None, None)
    error = body.get("error")
    if isinstance(error, dict):
        return _ErrorBody(_text(error.get("name")), _text(error.get("message")))
    if isinstance(error, str):
        return _ErrorBody(error, _text(body.get("message")))
    if any(key in body for key in ("type", "title", "detail")):
        name = _text(body.get("title")) or _text(body.get("type"))
        return _ErrorBody(name, _text(body.get("detail")))
    return _ErrorBody(None, _text(body.get("message")))


def _text(value: object) -> str | None:
    """A non-empty string field, or None."""
    return value if isinstance(value, str) and value else None
