"""The transport under the HTTP client: TLS contexts and a record of the headers sent.

``TransportAdapter`` is the ``requests`` transport adapter the client mounts.
It takes its TLS settings from two prepared SSL contexts (verifying and not),
and its connections note every header line they write, so that the client
can report the headers exactly as they went on the wire (``sent_headers``),
those that urllib3 or ``http.client`` add on their own included.
"""

from __future__ import annotations

import functools
import os
import ssl
import sys
import threading
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, cast
from urllib.parse import urlsplit

import requests
import truststore
from requests.adapters import DEFAULT_POOLBLOCK
from requests.utils import DEFAULT_CA_BUNDLE_PATH
from urllib3 import PoolManager
from urllib3.connection import HTTPConnection
from urllib3.connectionpool import HTTPConnectionPool
from urllib3.util import SKIP_HEADER

from pmrunner.errors import InputError
from runtime.egress import EgressPolicy
from runtime.egress_transport import EgressAdapter
from runtime.options import TLSOptions

# Meant for the proxy, and holding the proxy's own credentials: not part of the request's record.
_UNRECORDED = frozenset({"proxy-authorization"})


# Variables that name CA certificates to trust, in the order their files are loaded.
TRUST_VARIABLES = (
    "SSL_CERT_FILE",  # OpenSSL and Python
    "SSL_CERT_DIR",  # OpenSSL: directories of hashed certificates, separated by ":"
    "REQUESTS_CA_BUNDLE",  # requests, pip
    "NODE_EXTRA_CA_CERTS",  # Node.js, so newman's users set it
    "PMRUNNER_EXTRA_CA_CERTS",  # pmrunner's own, for workers
)


@dataclass(frozen=True)
class TrustSource:
    """A file or directory of CA certificates, and what named it (a variable or option)."""

    origin: str
    path: Path

    def stamp(self) -> tuple[float, int] | None:
        return _stamp(self.path)


def trust_sources(tls: TLSOptions, environ: Mapping[str, str] | None = None) -> list[TrustSource]:
    """CA certificates to trust on top of the OS trust store and certifi's bundle.

    Parameters:
        tls: the run's TLS options (``--ssl-extra-ca-certs`` comes last).
        environ: the environment to read ``TRUST_VARIABLES`` from (default: this process').
    """
    environ = os.environ if environ is None else environ
    sources = []
    for variable in TRUST_VARIABLES:
        for entry in (environ.get(variable) or "").split(os.pathsep):
            path = Path(entry.strip())
            # OpenSSL skips directories of SSL_CERT_DIR that do not exist; a file must.
            if entry.strip() and (variable != "SSL_CERT_DIR" or path.is_dir()):
                sources.append(TrustSource(variable, path))
    if tls.extra_ca_certs is not None:
        sources.append(TrustSource("--ssl-extra-ca-certs", tls.extra_ca_certs))
    return sources


def build_ssl_context(tls: TLSOptions, *, verify: bool) -> ssl.SSLContext:
    """The TLS context for outgoing connections, built once per settings and files.

    Loading the CA bundles takes milliseconds, and a distributed run makes a
    client per request; contexts are safe to share between threads. A context
    is rebuilt when one of its files changes on disk, or a trust variable.
    """
    sources = tuple(trust_sources(tls)) if verify else ()
    stamps = tuple(source.stamp() for source in sources)
    stamps += tuple(_stamp(path) for path in (tls.client_cert, tls.client_key))
    return _cached_context(tls, verify, sources, stamps)


def _stamp(path: Path | None) -> tuple[float, int] | None:
    if path is None:
        return None
    try:
        stat = path.stat()
    except OSError:
        return None  # loading reports the missing file
    return (stat.st_mtime, stat.st_size)


@functools.lru_cache(maxsize=32)
def _cached_context(
    tls: TLSOptions,
    verify: bool,
    sources: tuple[TrustSource, ...],
    _stamps: tuple[tuple[float, int] | None, ...],
) -> ssl.SSLContext:
    return _new_ssl_context(tls, sources, verify=verify)


def _new_ssl_context(
    tls: TLSOptions, sources: tuple[TrustSource, ...], *, verify: bool
) -> ssl.SSLContext:
    """Build the TLS context for outgoing connections.

    Parameters:
        tls: an optional client certificate, key and key passphrase.
        sources: CA certificates trusted besides the OS trust store and
            certifi's bundle (``trust_sources``); they add, never replace.
        verify: check the server's certificate and host name.

    Raises:
        InputError: a CA, certificate or key file that cannot be loaded.
    """
    if verify:
        context = _trusting_context(sources)
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


# Where truststore verifies through the OS itself. Elsewhere (Linux, BSD) the OS
# store is OpenSSL's system files: loaded once into the context here, where
# truststore would load them again for every connection (40 ms a handshake).
_OS_VERIFIES = sys.platform in ("darwin", "win32")


def _trusting_context(sources: tuple[TrustSource, ...]) -> ssl.SSLContext:
    """A verifying context that trusts the OS store, certifi's bundle and ``sources``.

    OpenSSL lets ``SSL_CERT_FILE`` replace the system file rather than add to
    it, so the system locations OpenSSL was built with are loaded explicitly.
    A file named twice (the variables often all name the system bundle) is
    loaded once. With no ``sources`` (no file a user named, so none whose
    error must stop the run before it starts), the files are loaded on the
    context's first use: a run that makes no HTTPS connection never loads
    them (37 ms of CPU).
    """
    if _OS_VERIFIES:
        context = cast(ssl.SSLContext, truststore.SSLContext(ssl.PROTOCOL_TLS_CLIENT))
    elif not sources:
        context = _TrustLoadedOnFirstUse(ssl.PROTOCOL_TLS_CLIENT)
    else:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    system = ssl.get_default_verify_paths()
    builtin = [TrustSource("certifi", Path(DEFAULT_CA_BUNDLE_PATH))]
    for location in (system.openssl_cafile, system.openssl_capath):
        if location and os.path.exists(location):
            builtin.append(TrustSource("the system store", Path(location)))
    unique: dict[Path, TrustSource] = {}
    for source in (*builtin, *sources):
        unique.setdefault(source.path.resolve(), source)
    if isinstance(context, _TrustLoadedOnFirstUse):
        context.pending = list(unique.values())
    else:
        _load_trust(context, unique.values())
    return context


def _load_trust(context: ssl.SSLContext, sources: Iterable[TrustSource]) -> None:
    for source in sources:
        with _loading(f"CA certificates {source.path} (from {source.origin})"):
            if source.path.is_dir():
                context.load_verify_locations(capath=str(source.path))
            else:
                context.load_verify_locations(cafile=str(source.path))


class _TrustLoadedOnFirstUse(ssl.SSLContext):
    """A verifying context whose CA files are loaded before its first handshake.

    ``pending`` holds the files; every way in to the trusted certificates (a
    connection, a memory BIO, the store's listing) loads them first, once.
    """

    pending: list[TrustSource]
    _load_lock = threading.Lock()

    def _load_pending(self) -> None:
        with self._load_lock:
            pending, self.pending = getattr(self, "pending", []), []
            _load_trust(self, pending)

    def wrap_socket(self, *args: Any, **kwargs: Any) -> Any:
        self._load_pending()
        return super().wrap_socket(*args, **kwargs)

    def wrap_bio(self, *args: Any, **kwargs: Any) -> Any:
        self._load_pending()
        return super().wrap_bio(*args, **kwargs)

    def get_ca_certs(self, *args: Any, **kwargs: Any) -> Any:
        self._load_pending()
        return super().get_ca_certs(*args, **kwargs)

    def cert_store_stats(self) -> Any:
        self._load_pending()
        return super().cert_store_stats()


@contextmanager
def _loading(what: str) -> Iterator[None]:
    try:
        yield
    except OSError as error:  # ssl.SSLError included
        raise InputError(f"cannot load {what}: {error.strerror or error}") from error


_wire = threading.local()


@contextmanager
def exact_target(target: str) -> Iterator[None]:
    """Send the request line of requests this thread makes inside with ``target``.

    ``target`` is the path and query as Postman encodes them. urllib3 would
    re-encode them (``%2a`` to ``%2A``, a lone ``%`` to ``%25``, ``|`` to
    ``%7C``) and drop an empty query's ``?``; Postman sends them as written.
    """
    _wire.target = target
    try:
        yield
    finally:
        _wire.target = None


def _request_target(url: str) -> str:
    """The request line's target: ``exact_target``'s, in the form urllib3 chose."""
    target = getattr(_wire, "target", None)
    if target is None:
        return url
    if url.startswith("/"):
        return str(target)
    origin = urlsplit(url)  # absolute form, to a plain-HTTP proxy
    return f"{origin.scheme}://{origin.netloc}{target}"


class HeaderRecorder(HTTPConnection):
    """A connection that keeps the header lines of the request it last sent.

    Mixed into the connection classes of every pool the adapter creates
    (plain, TLS, SOCKS), in front of the class it records for. It also puts
    the exact request target (``exact_target``) on the request line.
    """

    sent_headers: list[tuple[str, str]]

    def putrequest(
        self,
        method: str,
        url: str,
        skip_host: bool = False,
        skip_accept_encoding: bool = False,
    ) -> None:
        self.sent_headers = []  # http.client adds Host and Accept-Encoding from here
        url = _request_target(url)
        super().putrequest(
            method, url, skip_host=skip_host, skip_accept_encoding=skip_accept_encoding
        )

    def putheader(self, header: str, *values: str) -> None:  # type: ignore[override]  # as urllib3
        super().putheader(header, *values)
        if SKIP_HEADER in values or header.lower() in _UNRECORDED:
            return
        self.sent_headers.append((header, ", ".join(_as_text(value) for value in values)))


def _as_text(value: str | bytes | int) -> str:
    """A header value as text.

    http.client writes str values as latin-1 (and puts some, such as Host,
    as bytes); the client hands UTF-8 over as latin-1 characters, so a value
    whose bytes are valid UTF-8 is shown decoded.
    """
    if isinstance(value, int):
        return str(value)
    raw = value if isinstance(value, bytes) else value.encode("latin-1", errors="replace")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def sent_headers_of(response: requests.Response) -> list[tuple[str, str]]:
    """The headers that the request of ``response`` went out with.

    Call it before the body is read: reading to the end hands the connection
    back to its pool, to send the next request. Should the connection have
    kept no record, the headers handed to it are the answer.
    """
    connection = getattr(response.raw, "connection", None)
    recorded = getattr(connection, "sent_headers", None)
    if isinstance(recorded, list):
        return list(recorded)
    handed_over = response.request.headers.items() if response.request is not None else []
    return [(key, _as_text(value)) for key, value in handed_over if value != SKIP_HEADER]


@cache
def _recording_pool(pool_class: type[HTTPConnectionPool]) -> type[HTTPConnectionPool]:
    """``pool_class`` with a connection class that records headers."""
    connection_class = pool_class.ConnectionCls
    if issubclass(connection_class, HeaderRecorder):
        return pool_class
    recording = type(
        f"Recording{connection_class.__name__}", (HeaderRecorder, connection_class), {}
    )
    attributes = {"ConnectionCls": recording}
    return cast(type[HTTPConnectionPool], type(pool_class.__name__, (pool_class,), attributes))


def _record_headers(manager: PoolManager) -> PoolManager:
    # Only pools created after this use the recording classes: call it on a new manager.
    manager.pool_classes_by_scheme = {
        scheme: _recording_pool(pool_class)
        for scheme, pool_class in manager.pool_classes_by_scheme.items()
    }
    return manager


class TransportAdapter(EgressAdapter):
    """A transport adapter with prepared TLS contexts whose connections record headers.

    The contexts already hold the CA bundle and the client certificate, so the
    adapter keeps requests from loading certificate files per connection.

    Parameters:
        verifying: the context for requests that check certificates.
        insecure: the context for requests that do not.
        egress: the egress policy every connection enforces (default: the defaults).
    """

    def __init__(
        self,
        verifying: ssl.SSLContext,
        insecure: ssl.SSLContext,
        egress: EgressPolicy | None = None,
    ) -> None:
        self._contexts = {True: verifying, False: insecure}
        super().__init__(egress)

    def init_poolmanager(
        self,
        connections: int,
        maxsize: int,
        block: bool = DEFAULT_POOLBLOCK,
        **pool_kwargs: Any,
    ) -> None:
        super().init_poolmanager(connections, maxsize, block, **pool_kwargs)
        _record_headers(self.poolmanager)

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        known = proxy in self.proxy_manager
        manager = super().proxy_manager_for(proxy, **proxy_kwargs)
        return manager if known else _record_headers(manager)

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
