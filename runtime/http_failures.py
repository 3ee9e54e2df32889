"""Newman-style messages for failed exchanges.

The HTTP client turns whatever requests, urllib3, ``ssl`` or the socket layer
raised into one ``RequestError`` whose message reads like newman's:
``connect ECONNREFUSED 127.0.0.1:5999``, ``connect ETIMEDOUT host:port``,
``ESOCKETTIMEDOUT``, ``getaddrinfo ENOTFOUND host``, ``socket hang up``,
TLS verification errors naming the host and port.
"""

from __future__ import annotations

import http.client
import socket
import ssl
from collections.abc import Iterator
from urllib.parse import urlsplit

import requests
import urllib3


def describe_failure(error: BaseException, url: str) -> str:
    """A newman-style message for a failed exchange.

    Parameters:
        error: what requests or urllib3 raised.
        url: the URL being requested, to name its host and port.
    """
    parts = urlsplit(url)
    host = parts.hostname or ""
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        port = 0
    causes = list(_causes(error))
    if any(isinstance(cause, _PROXY_ERRORS) for cause in causes):
        return f"tunneling socket could not be established, cause={_os_reason(causes)}"
    for cause in causes:  # outermost first: requests' and urllib3's own kinds decide early
        message = _message_for(cause, host, port)
        if message:
            return message
    return f"{type(error).__name__}: {error}"


_PROXY_ERRORS = (requests.exceptions.ProxyError, urllib3.exceptions.ProxyError)
_CONNECT_TIMEOUTS = (requests.exceptions.ConnectTimeout, urllib3.exceptions.ConnectTimeoutError)
_READ_TIMEOUTS = (requests.exceptions.ReadTimeout, urllib3.exceptions.ReadTimeoutError)


def _message_for(cause: BaseException, host: str, port: int) -> str | None:
    """The message for one link of the error chain, or None to look further in."""
    if isinstance(cause, ssl.SSLCertVerificationError):
        return f"certificate verification failed for {host}:{port}: {cause.verify_message}"
    if isinstance(cause, ssl.SSLError):
        return f"TLS handshake with {host}:{port} failed: {cause.reason or cause}"
    if isinstance(cause, urllib3.exceptions.NameResolutionError | socket.gaierror):
        return f"getaddrinfo ENOTFOUND {host}"
    if isinstance(cause, ConnectionRefusedError):
        return f"connect ECONNREFUSED {host}:{port}"
    # urllib3 makes NewConnectionError a ConnectTimeoutError for old callers; it is not one.
    if isinstance(cause, _CONNECT_TIMEOUTS) and not isinstance(
        cause, urllib3.exceptions.NewConnectionError
    ):
        return f"connect ETIMEDOUT {host}:{port}"
    if isinstance(cause, (*_READ_TIMEOUTS, TimeoutError)):
        return "ESOCKETTIMEDOUT"
    if isinstance(cause, http.client.RemoteDisconnected | http.client.IncompleteRead):
        return "socket hang up"
    if isinstance(cause, ConnectionResetError):
        return "read ECONNRESET"
    if isinstance(cause, requests.exceptions.InvalidURL | urllib3.exceptions.LocationValueError):
        return f'Invalid URI "{host}"'
    if isinstance(cause, ValueError) and "header" in str(cause).lower():
        return f"invalid request header: {cause}"
    return None


def _os_reason(causes: list[BaseException]) -> str:
    for cause in causes:
        if isinstance(cause, OSError) and not isinstance(cause, requests.RequestException):
            return cause.strerror or str(cause)
    return str(causes[-1])


def _causes(error: BaseException) -> Iterator[BaseException]:
    """The error and everything it wraps (args, ``reason``, cause, context)."""
    pending: list[BaseException] = [error]
    seen: set[int] = set()
    while pending and len(seen) < 32:
        current = pending.pop(0)
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        wrapped = [*current.args, getattr(current, "reason", None)]
        wrapped += [current.__cause__, current.__context__]
        pending.extend(item for item in wrapped if isinstance(item, BaseException))
