"""Send ``OutgoingRequest``s the way Postman's runtime does.

One ``HttpClient`` serves one run (or one step of a distributed run): it owns
one ``requests.Session`` and so one cookie jar, with requests' cookie
semantics. A client is not shared between threads.

Redirects are followed here, not by requests, so that Postman's
protocolProfileBehavior applies to each hop, and requests go through the
session's transport adapter directly: ``Session.send`` would read (and
decode) every redirect body itself, and the raw size on the wire would be
lost. Headers keep their order and duplicates on the wire.

``OutgoingRequest.url`` holds the URL as Postman encodes it, and the request
line carries its path and query exactly so (``runtime.transport.exact_target``):
urllib3 does not re-encode them.

Each response records the headers its request went out with
(``HttpResponse.sent_headers``), as the connection wrote them: the jar's
cookies, and what urllib3 or ``http.client`` add themselves, included.

Errors become ``RequestError`` with messages in the style of newman's
(``runtime.http_failures``), and ``Exceeded maxRedirects...``. The TLS and
transport set-up is in ``runtime.transport``, the cookie-jar helpers in
``runtime.cookies``; ``build_ssl_context`` and ``describe_failure`` are
importable from here too.
"""

from __future__ import annotations

import http.client
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from http.cookiejar import CookieJar
from typing import Any
from urllib.parse import urljoin, urlsplit, urlunsplit

import requests
import urllib3
from requests.cookies import extract_cookies_to_jar
from requests.utils import get_environ_proxies
from urllib3.util import SKIP_HEADER

from pmrunner.errors import RequestError, ResponseTooLargeError
from runtime.auth.base import Signer
from runtime.body_reader import decode_body, read_body
from runtime.cookies import (
    MatchingPolicy,
    cookie_to_json,
    cookies_for_url,
    export_cookies,
    import_cookies,
    jar_cookie_header,
)
from runtime.exchange import HttpResponse, OutgoingRequest
from runtime.http_failures import describe_failure
from runtime.options import RunOptions
from runtime.transport import (
    TransportAdapter,
    build_ssl_context,
    exact_target,
    sent_headers_of,
)
from runtime.urls import normalize_url

__all__ = [
    "DEFAULT_MAX_REDIRECTS",
    "REDIRECT_CODES",
    "HttpClient",
    "build_ssl_context",
    "decode_body",
    "describe_failure",
]

DEFAULT_MAX_REDIRECTS = 10
REDIRECT_CODES = frozenset({300, 301, 302, 303, 305, 307, 308})
# urllib3 adds these itself unless told to skip them; Postman sends none it was not asked to.
_SKIPPABLE = ("User-Agent", "Accept-Encoding")


@dataclass(frozen=True)
class _Behavior:
    """The protocolProfileBehavior settings the client honours, with Postman's defaults."""

    follow_redirects: bool = True
    max_redirects: int = DEFAULT_MAX_REDIRECTS
    follow_original_method: bool = False
    follow_authorization: bool = False
    remove_referer: bool = False
    verify: bool = True
    cookies: bool = True  # disableCookies: the jar neither sends nor stores

    @classmethod
    def of(cls, behavior: Mapping[str, Any], options: RunOptions) -> _Behavior:
        try:
            max_redirects = int(behavior.get("maxRedirects", DEFAULT_MAX_REDIRECTS))
        except (TypeError, ValueError):
            max_redirects = DEFAULT_MAX_REDIRECTS  # as Postman, a malformed value is ignored
        strict = behavior.get("strictSSL")
        return cls(
            follow_redirects=options.follow_redirects
            and bool(behavior.get("followRedirects", True)),
            max_redirects=max(0, max_redirects),
            follow_original_method=bool(behavior.get("followOriginalHttpMethod", False)),
            follow_authorization=bool(behavior.get("followAuthorizationHeader", False)),
            remove_referer=bool(behavior.get("removeRefererHeaderOnRedirect", False)),
            verify=options.tls.verify if strict is None else bool(strict),
            cookies=not behavior.get("disableCookies"),
        )


@dataclass
class _Deadline:
    """The request timeout, covering every hop: connect, send and read."""

    seconds: float | None
    started: float = field(default_factory=time.monotonic)

    def remaining(self) -> float | None:
        if self.seconds is None:
            return None
        left = self.seconds - (time.monotonic() - self.started)
        if left <= 0:
            raise RequestError("ESOCKETTIMEDOUT")
        return left


class HttpClient:
    """Sends requests for one run, with one cookie jar. Not shared between threads.

    Parameters:
        options: run options: request timeout, TLS settings, ``follow_redirects``.
    """

    def __init__(self, options: RunOptions) -> None:
        self._options = options
        self._policy = MatchingPolicy()
        self._proxy_cache: dict[str, dict[str, str]] = {}
        self._session = requests.Session()
        self._session.cookies.set_policy(self._policy)
        adapter = TransportAdapter(
            build_ssl_context(options.tls, verify=True),
            build_ssl_context(options.tls, verify=False),
            options.egress,
        )
        self._session.mount("http://", adapter)
        self._session.mount("https://", adapter)

    def send(
        self,
        request: OutgoingRequest,
        *,
        behavior: Mapping[str, Any] | None = None,
        signer: Signer | None = None,
    ) -> HttpResponse:
        """Send a request, following redirects as its protocolProfileBehavior says.

        Parameters:
            request: the built request; the signer may change it.
            behavior: protocolProfileBehavior: followRedirects, maxRedirects,
                followOriginalHttpMethod, followAuthorizationHeader,
                removeRefererHeaderOnRedirect, strictSSL, disableCookies.
            signer: signs the request first; when it answers a challenge
                (digest) the request is sent once more.

        Raises:
            RequestError: the exchange failed (connection, TLS, timeout,
                redirects, an undecodable body).
        """
        settings = _Behavior.of(behavior or {}, self._options)
        if signer is not None:
            signer.sign(request)
        response = self._exchange(request, settings)
        if signer is not None and signer.challenge(request, response):
            response = self._exchange(request, settings)
        return response

    @property
    def jar(self) -> CookieJar:
        """The run's cookie jar (scripts reach it through ``pm.cookies.jar()``)."""
        return self._session.cookies

    def export_cookies(self) -> list[dict[str, Any]]:
        """Every cookie in the jar, in the JSON form of ``runtime.cookies``.

        The list is JSON-safe, for handing the jar to another client
        (``import_cookies``), for example to the next step of a run.
        """
        return export_cookies(self._session.cookies)

    def import_cookies(self, cookies: list[dict[str, Any]]) -> None:
        """Add cookies exported by another client (for example by an earlier step).

        Raises:
            InputError: an entry without a name or domain.
        """
        import_cookies(self._session.cookies, cookies)

    def cookies_for(self, url: str) -> list[dict[str, Any]]:
        """The cookies that a request to ``url`` would carry, most specific path first.

        Each is in the JSON form of ``runtime.cookies`` (its name is ``key``).
        """
        jar = self._session.cookies
        if next(iter(jar), None) is None:
            return []  # before each script: an empty jar needs no URL parsed
        matching = cookies_for_url(jar, self._policy, normalize_url(url))
        return [cookie_to_json(cookie) for cookie in matching]

    def close(self) -> None:
        """Close pooled connections."""
        self._session.close()

    def __enter__(self) -> HttpClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def _exchange(self, request: OutgoingRequest, settings: _Behavior) -> HttpResponse:
        deadline = _Deadline(self._options.timeouts.request_seconds)
        hop = OutgoingRequest(request.method, request.url, list(request.headers), request.body)
        history: list[HttpResponse] = []
        started = time.perf_counter()
        while True:
            response = self._send_hop(hop, settings, deadline)
            location = response.header("Location")
            if not (settings.follow_redirects and response.code in REDIRECT_CODES and location):
                break
            target = normalize_url(urljoin(hop.url, location))
            if len(history) >= settings.max_redirects:
                raise RequestError(
                    f"Exceeded maxRedirects. Probably stuck in a redirect loop {target}"
                )
            history.append(response)
            hop = _next_hop(hop, response.code, target, settings)
        response.history = history
        response.response_time_ms = (time.perf_counter() - started) * 1000
        return response

    def _proxies_for(self, url: str) -> dict[str, str]:
        """HTTP(S)_PROXY / NO_PROXY for a URL's origin, read once per client and origin.

        Reading them costs about half a millisecond a request, and a run's
        environment does not change while it runs.
        """
        parts = urlsplit(url)
        origin = f"{parts.scheme}://{parts.netloc}"
        proxies = self._proxy_cache.get(origin)
        if proxies is None:
            proxies = self._proxy_cache[origin] = dict(get_environ_proxies(url))
        return proxies

    def _send_hop(
        self, hop: OutgoingRequest, settings: _Behavior, deadline: _Deadline
    ) -> HttpResponse:
        prepared = self._prepare(hop, settings.cookies)
        url = str(prepared.url)
        started = time.perf_counter()
        sent: requests.Response | None = None
        try:
            with exact_target(_target_of(hop.url)):
                sent = self._session.get_adapter(url).send(
                    prepared,
                    stream=True,
                    timeout=deadline.remaining(),
                    verify=settings.verify,
                    proxies=self._proxies_for(url),
                )
            sent_headers = sent_headers_of(sent)  # before the body: reading frees the connection
            if settings.cookies:
                extract_cookies_to_jar(self._session.cookies, prepared, sent.raw)  # type: ignore[no-untyped-call]
            headers = _response_headers(sent.raw)
            _refuse_declared_size(headers, self._options.max_response_bytes)
            body, raw_size = read_body(
                sent.raw,
                _header(headers, "Content-Encoding"),
                self._options.max_response_bytes,
                deadline.remaining,
            )
            sent.raw.release_conn()
        except Exception as error:  # every transport failure becomes a RequestError
            if sent is not None:
                sent.close()
            if isinstance(error, RequestError):
                raise
            raise RequestError(describe_failure(error, hop.url)) from error
        return HttpResponse(
            code=sent.status_code,
            reason=sent.reason or http.client.responses.get(sent.status_code, ""),
            headers=headers,
            body=body,
            response_time_ms=(time.perf_counter() - started) * 1000,
            url=hop.url,
            raw_size=raw_size,
            sent_headers=sent_headers,
        )

    def _prepare(self, hop: OutgoingRequest, cookies: bool) -> requests.PreparedRequest:
        prepared = requests.PreparedRequest()
        prepared.method = hop.method
        # The builder already encoded the URL as Postman does; requests must not re-quote it.
        prepared.url = urlunsplit(urlsplit(hop.url)._replace(fragment=""))
        prepared.body = hop.body
        wire = urllib3.HTTPHeaderDict()
        for key, value in hop.headers:
            wire.add(key, _wire_value(value))
        prepared.headers = wire  # type: ignore[assignment]  # keeps duplicates on the wire
        for name in _SKIPPABLE:
            if name not in wire:
                wire[name] = SKIP_HEADER
        if hop.body is not None and "Content-Length" in wire:
            wire["Content-Length"] = str(len(hop.body))  # a signer may have changed the body
        if cookies:
            self._add_cookies(prepared, wire)
        return prepared

    def _add_cookies(
        self, prepared: requests.PreparedRequest, wire: urllib3.HTTPHeaderDict
    ) -> None:
        from_jar = jar_cookie_header(self._session.cookies, str(prepared.url), wire.get("Host"))
        if from_jar is None:
            return
        # Like postman-request: cookies set by the user come first, the jar's follow.
        own = wire.get("Cookie")
        wire["Cookie"] = f"{own}; {from_jar}" if own else from_jar


def _next_hop(hop: OutgoingRequest, code: int, target: str, settings: _Behavior) -> OutgoingRequest:
    """The request that follows a redirect, as postman-request builds it."""
    follow = OutgoingRequest(hop.method, target, list(hop.headers), hop.body)
    if not settings.follow_original_method and code not in (307, 308):
        follow.method = "HEAD" if hop.method == "HEAD" else "GET"
        follow.body = None
        for name in ("Content-Type", "Content-Length", "Transfer-Encoding"):
            follow.remove_header(name)
    if not settings.follow_authorization and _origin(hop.url) != _origin(target):
        follow.remove_header("Authorization")
    if not settings.remove_referer:
        follow.set_header("Referer", urlunsplit(urlsplit(hop.url)._replace(fragment="")))
    if follow.header("Host") is not None:
        follow.set_header("Host", urlsplit(target).netloc.rpartition("@")[2])
    return follow


def _target_of(url: str) -> str:
    """The path and query of an encoded URL, as the request line carries them."""
    before_hash = url.partition("#")[0]
    after_scheme = before_hash.partition("://")[2]
    slash = after_scheme.find("/")
    return after_scheme[slash:] if slash >= 0 else "/"


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    default = 443 if parts.scheme == "https" else 80
    return parts.scheme, (parts.hostname or ""), parts.port or default


def _wire_value(value: str) -> str:
    try:
        value.encode("latin-1")
        return value
    except UnicodeEncodeError:
        # http.client writes header values as latin-1: this sends the UTF-8 bytes unchanged.
        return value.encode("utf-8").decode("latin-1")


def _refuse_declared_size(headers: list[tuple[str, str]], limit: int) -> None:
    """A Content-Length past the limit fails at once, before a byte of the body is read."""
    declared = _header(headers, "Content-Length")
    if limit > 0 and declared and declared.strip().isdigit() and int(declared) > limit:
        raise ResponseTooLargeError(
            f"response body of {int(declared)} bytes is larger than the maximum response"
            f" size of {limit} bytes"
        )


def _response_headers(raw: Any) -> list[tuple[str, str]]:
    original = getattr(raw, "_original_response", None)
    if original is not None:  # http.client keeps the order and case of the wire
        return list(original.msg.items())
    return list(raw.headers.items())


def _header(headers: list[tuple[str, str]], name: str) -> str | None:
    return next((value for key, value in headers if key.lower() == name.lower()), None)
