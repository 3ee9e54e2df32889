"""URL and request helpers shared by the signers.

Query strings are edited as raw text, so that the parameters a request
already has keep their exact encoding; only what a signer adds is encoded
(RFC 3986: everything but unreserved characters is percent-encoded).
"""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import quote, unquote_plus, urlsplit, urlunsplit

from runtime.exchange import OutgoingRequest

DEFAULT_PORTS = {"http": 80, "https": 443}
# Characters legal in a URL's path and query, left alone when putting one on the wire.
_URL_SAFE = "!#$%&'()*+,/:;=?@[]~"


def encode(text: str) -> str:
    """Percent-encode everything but RFC 3986 unreserved characters."""
    return quote(text, safe="")


def query_pairs(query: str) -> list[tuple[str, str]]:
    """Decoded (name, value) pairs of a query string or a urlencoded body, in order.

    A name without ``=`` gets an empty value; ``+`` decodes to a space, as
    ``application/x-www-form-urlencoded`` asks.
    """
    pairs = []
    for part in query.split("&"):
        if not part:
            continue
        name, _, value = part.partition("=")
        pairs.append((unquote_plus(name), unquote_plus(value)))
    return pairs


def without_params(query: str, names: Iterable[str]) -> str:
    """A query string (or urlencoded body) minus the parameters with these names."""
    dropped = set(names)
    kept = [
        part
        for part in query.split("&")
        if part and unquote_plus(part.partition("=")[0]) not in dropped
    ]
    return "&".join(kept)


def with_params(query: str, params: Iterable[tuple[str, str]]) -> str:
    """A query string (or urlencoded body) with encoded ``params`` appended."""
    added = "&".join(f"{encode(name)}={encode(value)}" for name, value in params)
    if not added:
        return query
    return f"{query}&{added}" if query else added


def replace_query(url: str, query: str) -> str:
    """The URL with its query string replaced (the fragment is kept)."""
    parts = urlsplit(url)
    if parts.query == query:
        return url
    return urlunsplit(parts._replace(query=query))


def remove_query_params(url: str, names: Iterable[str]) -> str:
    """The URL without the query parameters of these names."""
    return replace_query(url, without_params(urlsplit(url).query, names))


def set_query_params(url: str, params: list[tuple[str, str]]) -> str:
    """The URL with ``params`` appended, after dropping any parameter of the same names."""
    query = urlsplit(url).query
    query = without_params(query, [name for name, _ in params])
    return replace_query(url, with_params(query, params))


def wire_url(url: str) -> str:
    """The URL as it goes on the wire: without its fragment, illegal characters encoded.

    The request builder hands over URLs already encoded and the HTTP client
    sends them as they are, so for those this changes nothing. A URL with raw
    spaces or non-ASCII text gets them percent-encoded (UTF-8) the way HTTP
    clients do, so that signatures cover the bytes the server will see.
    Existing ``%XX`` escapes are kept.
    """
    parts = urlsplit(url)
    return urlunsplit(
        parts._replace(
            path=quote(parts.path, safe=_URL_SAFE),
            query=quote(parts.query, safe=_URL_SAFE),
            fragment="",
        )
    )


def request_target(url: str) -> str:
    """Path and query as they appear on the request line (``/`` for an empty path)."""
    parts = urlsplit(wire_url(url))
    path = parts.path or "/"
    return f"{path}?{parts.query}" if parts.query else path


def host_and_port(url: str) -> tuple[str, int]:
    """Lower-case host name and port (the scheme's default when none is given)."""
    parts = urlsplit(url)
    port = parts.port or DEFAULT_PORTS.get(parts.scheme.lower(), 80)
    return (parts.hostname or "", port)


def host_header(url: str) -> str:
    """The ``Host`` header an HTTP client sends for this URL: the port only when not default."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:  # an IPv6 literal
        host = f"[{host}]"
    if parts.port is not None and parts.port != DEFAULT_PORTS.get(parts.scheme.lower()):
        host = f"{host}:{parts.port}"
    return host


def urlencoded_body(request: OutgoingRequest) -> str | None:
    """The body as text when the request carries a urlencoded form, else None."""
    if request.body_mode != "urlencoded":
        return None
    return (request.body or b"").decode("utf-8", errors="replace")


def replace_body(request: OutgoingRequest, body: bytes) -> None:
    """Set a new body, keeping a Content-Length header (if the request has one) true."""
    request.body = body
    if request.header("Content-Length") is not None:
        request.set_header("Content-Length", str(len(body)))


def add_secrets(request: OutgoingRequest, *values: str) -> None:
    """Record values that reports must mask; empty values are skipped."""
    request.secrets.update(value for value in values if value)
