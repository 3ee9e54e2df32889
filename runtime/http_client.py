"""Send ``OutgoingRequest``s the way Postman's runtime does.

One ``HttpClient`` serves one run (or one step of a distributed run): it owns
one ``requests.Session`` and so one cookie jar, with requests' cookie
semantics. A client is not shared between threads.

Redirects are followed here, not by requests, so that Postman's
protocolProfileBehavior applies to each hop, and requests go through the
session's transport adapter directly: ``Session.send`` would read (and
decode) every redirect body itself, and the raw size on the wire would be
lost. Headers keep their order and duplicates on the wire.

``OutgoingRequest.url`` holds the URL as Postman encodes it; on the wire,
urllib3 also percent-encodes the few characters RFC 3986 does not allow in a
path or query (``[ ] { } | ^`` and the backquote), which servers decode alike.

Errors become ``RequestError`` with messages in the style of newman's:
``connect ECONNREFUSED 127.0.0.1:5999``, ``connect ETIMEDOUT host:port``,
``ESOCKETTIMEDOUT``, ``getaddrinfo ENOTFOUND host``, TLS verification errors
naming the host, ``Exceeded maxRedirects...``.
"""

from __future__ import annotations

import http.client
import socket
import ssl
import time
import zlib
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.cookiejar import Cookie, CookieJar, DefaultCookiePolicy
from typing import Any
from urllib.parse import urljoin, urlsplit, urlunsplit
from urllib.request import Request as UrllibRequest

import brotli
import requests
import urllib3
from requests.adapters import HTTPAdapter
from requests.cookies import extract_cookies_to_jar, get_cookie_header
from requests.structures import CaseInsensitiveDict
from requests.utils import DEFAULT_CA_BUNDLE_PATH, get_environ_proxies
from urllib3.util import SKIP_HEADER

from pmrunner.errors import InputError, RequestError
from runtime.auth.base import Signer
from runtime.exchange import HttpResponse, OutgoingRequest
from runtime.options import RunOptions, TLSOptions
from runtime.request_builder import normalize_url

DEFAULT_MAX_REDIRECTS = 10
REDIRECT_CODES = frozenset({300, 301, 302, 303, 305, 307, 308})
_READ_SIZE = 64 * 1024
# urllib3 adds these itself unless told to skip them; Postman sends none it was not asked to.
_SKIPPABLE = ("User-Agent", "Accept-Encoding")


def build_ssl_context(tls: TLSOptions, *, verify: bool) -> ssl.SSLContext:
    """Build the TLS context for outgoing connections.

    Parameters:
        tls: extra CA certificates (added to the default bundle, not replacing
            it) and an optional client certificate, key and key passphrase.
        verify: check the server's certificate and host name.

    Raises:
        InputError: a CA, certificate or key file that cannot be loaded.
    """
    if verify:
        context = ssl.create_default_context(cafile=DEFAULT_CA_BUNDLE_PATH)
        if tls.extra_ca_certs is not None:
            with _loading(f"extra CA certificates {tls.extra_ca_certs}"):
                context.load_verify_locations(cafile=str(tls.extra_ca_certs))
    else:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if tls.client_cert is not None:
        key = str(tls.client_key) if tls.client_key else None
        what = f"client certificate {tls.client_cert}" + (f" with key {key}" if key else "")
        with _loading(what + (" (is the passphrase right?)" if tls.client_passphrase else "")):
            context.load_cert_chain(str(tls.client_cert), key, password=tls.client_passphrase)
        context.post_handshake_auth = True  # TLS 1.3 servers may ask after the handshake
    return context


@contextmanager
def _loading(what: str) -> Iterator[None]:
    try:
        yield
    except OSError as error:  # ssl.SSLError included
        raise InputError(f"cannot load {what}: {error.strerror or error}") from error


class _ContextAdapter(HTTPAdapter):
    """A transport adapter whose TLS settings come from two prepared SSL contexts.

    The contexts already hold the CA bundle and the client certificate, so the
    adapter keeps requests from loading certificate files per connection.
    """

    def __init__(self, verifying: ssl.SSLContext, insecure: ssl.SSLContext) -> None:
        self._contexts = {True: verifying, False: insecure}
        super().__init__()

    def build_connection_pool_key_attributes(
        self, request: requests.PreparedRequest, verify: Any, cert: Any = None
    ) -> tuple[Any, Any]:
        host_params, _ = super().build_connection_pool_key_attributes(request, verify, None)
        checked = verify is not False
        pool_kwargs = {
            "ssl_context": self._contexts[checked],
            "cert_reqs": "CERT_REQUIRED" if checked else "CERT_NONE",
        }
        return host_params, pool_kwargs

    def cert_verify(self, conn: Any, url: str, verify: Any, cert: Any) -> None:
        conn.cert_reqs = "CERT_REQUIRED" if verify is not False else "CERT_NONE"
        conn.ca_certs = None
        conn.ca_cert_dir = None


@dataclass(frozen=True)
class _Behavior:
    """The protocolProfileBehavior settings the client honours, with Postman's defaults."""

    follow_redirects: bool = True
    max_redirects: int = DEFAULT_MAX_REDIRECTS
    follow_original_method: bool = False
    follow_authorization: bool = False
    remove_referer: bool = False
    verify: bool = True

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
        self._policy = _CookiePolicy()
        self._session = requests.Session()
        self._session.cookies.set_policy(self._policy)
        adapter = _ContextAdapter(
            build_ssl_context(options.tls, verify=True),
            build_ssl_context(options.tls, verify=False),
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
                removeRefererHeaderOnRedirect, strictSSL.
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
        """Every cookie in the jar as JSON-safe dicts (see ``import_cookies``)."""
        return [_cookie_to_dict(cookie) for cookie in self._session.cookies]

    def import_cookies(self, cookies: list[dict[str, Any]]) -> None:
        """Add cookies exported by another client (for example by an earlier step).

        Raises:
            InputError: an entry without a name or domain.
        """
        for entry in cookies:
            self._session.cookies.set_cookie(_cookie_from_dict(entry))

    def cookies_for(self, url: str) -> list[dict[str, Any]]:
        """The cookies that a request to ``url`` would carry, most specific path first."""
        target = UrllibRequest(normalize_url(url))
        matching = [
            cookie
            for cookie in self._session.cookies
            if self._policy.domain_return_ok(cookie.domain, target)
            and self._policy.path_return_ok(cookie.path, target)
            and self._policy.return_ok(cookie, target)
        ]
        matching.sort(key=lambda cookie: len(cookie.path), reverse=True)
        return [_cookie_to_dict(cookie) for cookie in matching]

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
            response = self._send_hop(hop, settings.verify, deadline)
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

    def _send_hop(self, hop: OutgoingRequest, verify: bool, deadline: _Deadline) -> HttpResponse:
        prepared = self._prepare(hop)
        url = str(prepared.url)
        started = time.perf_counter()
        sent: requests.Response | None = None
        try:
            sent = self._session.get_adapter(url).send(
                prepared,
                stream=True,
                timeout=deadline.remaining(),
                verify=verify,
                proxies=get_environ_proxies(url),
            )
            extract_cookies_to_jar(self._session.cookies, prepared, sent.raw)  # type: ignore[no-untyped-call]
            raw_body = _read_body(sent.raw, deadline)
        except Exception as error:  # every transport failure becomes a RequestError
            if sent is not None:
                sent.close()
            if isinstance(error, RequestError):
                raise
            raise RequestError(describe_failure(error, hop.url)) from error
        headers = _response_headers(sent.raw)
        return HttpResponse(
            code=sent.status_code,
            reason=sent.reason or http.client.responses.get(sent.status_code, ""),
            headers=headers,
            body=decode_body(raw_body, _header(headers, "Content-Encoding")),
            response_time_ms=(time.perf_counter() - started) * 1000,
            url=hop.url,
            raw_size=len(raw_body),
        )

    def _prepare(self, hop: OutgoingRequest) -> requests.PreparedRequest:
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
        self._add_cookies(prepared, wire)
        return prepared

    def _add_cookies(
        self, prepared: requests.PreparedRequest, wire: urllib3.HTTPHeaderDict
    ) -> None:
        # The jar adds nothing to a request that has a Cookie header: ask it with a bare probe.
        probe = requests.PreparedRequest()
        probe.url = prepared.url
        probe.headers = CaseInsensitiveDict(
            {"Host": wire.get("Host", "")} if "Host" in wire else {}
        )
        from_jar = get_cookie_header(self._session.cookies, probe)  # type: ignore[no-untyped-call]
        if not from_jar:
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


def _read_body(raw: Any, deadline: _Deadline) -> bytes:
    chunks = []
    while True:
        deadline.remaining()  # raises once the request timeout has passed
        chunk = raw.read1(_READ_SIZE, decode_content=False)
        if not chunk:
            break
        chunks.append(chunk)
    raw.release_conn()
    return b"".join(chunks)


def _response_headers(raw: Any) -> list[tuple[str, str]]:
    original = getattr(raw, "_original_response", None)
    if original is not None:  # http.client keeps the order and case of the wire
        return list(original.msg.items())
    return list(raw.headers.items())


def _header(headers: list[tuple[str, str]], name: str) -> str | None:
    return next((value for key, value in headers if key.lower() == name.lower()), None)


def decode_body(body: bytes, content_encoding: str | None) -> bytes:
    """Undo Content-Encoding (gzip, deflate, br; several in a row are allowed).

    Parameters:
        body: the bytes as received.
        content_encoding: the response's Content-Encoding header, if any.

    Raises:
        RequestError: the body is not valid for its declared encoding.
    """
    if not body or not content_encoding:
        return body
    for coding in reversed([c.strip().lower() for c in content_encoding.split(",")]):
        decoder = _DECODERS.get(coding)
        if decoder is None:
            return body  # identity, or a coding nobody asked for: leave the bytes as they are
        try:
            body = decoder(body)
        except (zlib.error, brotli.error) as error:
            raise RequestError(f"cannot decode the {coding} response body: {error}") from error
    return body


def _gunzip(body: bytes) -> bytes:
    return zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(body)


def _inflate(body: bytes) -> bytes:
    try:
        return zlib.decompress(body)
    except zlib.error:  # servers often send raw deflate without the zlib wrapper
        return zlib.decompressobj(-zlib.MAX_WBITS).decompress(body)


_DECODERS: dict[str, Callable[[bytes], bytes]] = {
    "gzip": _gunzip,
    "x-gzip": _gunzip,
    "deflate": _inflate,
    "br": brotli.decompress,
    "identity": lambda body: body,
}


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


class _CookiePolicy(DefaultCookiePolicy):
    """The default policy, answerable outside the jar's own ``add_cookie_header``."""

    def return_ok_expires(self, cookie: Cookie, request: Any) -> bool:
        return not cookie.is_expired()


def _cookie_to_dict(cookie: Cookie) -> dict[str, Any]:
    return {
        "name": cookie.name,
        "value": cookie.value,
        "domain": cookie.domain,
        "path": cookie.path,
        "expires": cookie.expires,
        "secure": cookie.secure,
        "httpOnly": cookie.has_nonstandard_attr("HttpOnly"),
        "hostOnly": not cookie.domain_specified,
        "session": cookie.expires is None,
        "version": cookie.version,
        "pathSpecified": cookie.path_specified,
        "domainInitialDot": cookie.domain_initial_dot,
        "extensions": dict(getattr(cookie, "_rest", {})),
    }


def _cookie_from_dict(entry: Mapping[str, Any]) -> Cookie:
    if not entry.get("name") or not entry.get("domain"):
        raise InputError(f"cookie entry needs `name` and `domain`: {dict(entry)!r}")
    domain = str(entry["domain"])
    rest = dict(entry.get("extensions") or {})
    if entry.get("httpOnly"):
        rest.setdefault("HttpOnly", None)
    expires = entry.get("expires")
    return Cookie(
        version=int(entry.get("version") or 0),
        name=str(entry["name"]),
        value=None if entry.get("value") is None else str(entry["value"]),
        port=None,
        port_specified=False,
        domain=domain,
        domain_specified=not entry.get("hostOnly", False),
        domain_initial_dot=bool(entry.get("domainInitialDot", domain.startswith("."))),
        path=str(entry.get("path") or "/"),
        path_specified=bool(entry.get("pathSpecified", True)),
        secure=bool(entry.get("secure", False)),
        expires=None if expires is None else int(expires),
        discard=expires is None,
        comment=None,
        comment_url=None,
        rest=rest,
    )
