"""Serving the API with uvicorn: ``pmrunner api`` and tests start it here.

The socket is bound before uvicorn starts, so an address that is taken is
a clear error rather than a log line and an exit. uvicorn's access log
stays off: :mod:`api.access_log` logs requests without their query strings.
"""

from __future__ import annotations

import logging
import socket
import threading
from typing import Any

import uvicorn

from api.app import create_api
from pmrunner.errors import ConfigurationError
from worker.settings import Settings

log = logging.getLogger("pmrunner.api")
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def listening_socket(host: str, port: int) -> socket.socket:
    """A TCP socket bound to ``host:port`` (port 0: any free port).

    Raises:
        ConfigurationError: the address cannot be bound (taken, not local).
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # Accepted connections inherit it. Without it, on a kept-alive connection
    # uvicorn's separate writes of headers and body meet the client's delayed
    # ACK: 43 ms per request instead of 0.4 ms.
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        sock.bind((host, port))
    except OSError as error:
        sock.close()
        reason = error.strerror or str(error)
        raise ConfigurationError(f"the API cannot listen on {host}:{port}: {reason}") from None
    return sock


def build_server(
    app: Any,
    *,
    log_config: dict[str, Any] | None = None,
    trusted_proxies: tuple[str, ...] = (),
) -> uvicorn.Server:
    """A uvicorn server for ``app`` (pass its socket to ``run``/``serve``).

    Parameters:
        app: the ASGI app.
        log_config: uvicorn's logging configuration; None leaves logging as
            the process has set it up.
        trusted_proxies: addresses or CIDRs whose ``X-Forwarded-For`` and
            ``X-Forwarded-Proto`` are believed. uvicorn believes 127.0.0.1 by
            default, which would let anyone on the host pick the address the
            rate limit counts; with none, the headers are ignored.
    """
    config = uvicorn.Config(
        app,
        access_log=False,
        log_config=log_config,
        proxy_headers=bool(trusted_proxies),
        forwarded_allow_ips=list(trusted_proxies) or None,
        lifespan="off",
        server_header=False,
        # Runs can take minutes; keep-alive connections need not.
        timeout_keep_alive=5,
    )
    return uvicorn.Server(config)


def serve_api_in_background(settings: Settings) -> threading.Thread:
    """Serve the API from a daemon thread (``pmrunner runner start``).

    Binds first, so a taken address fails the caller at once. The thread
    ends with the process; uvicorn leaves signal handling to the main thread.
    """
    app = create_api(settings)
    sock = listening_socket(settings.api_host, settings.api_port)
    log.info("serving the HTTP API on http://%s:%d", settings.api_host, sock.getsockname()[1])
    server = build_server(app, trusted_proxies=settings.api_trusted_proxies)
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name="pmrunner-api", daemon=True
    )
    thread.start()
    return thread


def serve_api(
    settings: Settings,
    *,
    host: str | None = None,
    port: int | None = None,
    insecure_no_auth: bool = False,
) -> None:
    """Serve the API until the process is stopped (SIGINT or SIGTERM).

    Parameters:
        settings: the API's settings; ``api_host`` and ``api_port`` say where.
        host, port: override the settings' address.
        insecure_no_auth: serve without an API key (see :func:`api.app.create_api`).

    Raises:
        ConfigurationError: no API key and no ``insecure_no_auth``, or the
            address cannot be bound.
    """
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format=LOG_FORMAT)
    app = create_api(settings, insecure_no_auth=insecure_no_auth)
    from tasks.upkeep import start_upkeep  # the API sweeps too, when it is all that runs

    start_upkeep(app.state.context.celery_app)
    host = host or settings.api_host
    port = settings.api_port if port is None else port
    sock = listening_socket(host, port)
    log.info("serving the HTTP API on http://%s:%d", host, sock.getsockname()[1])
    try:
        build_server(app, trusted_proxies=settings.api_trusted_proxies).run(sockets=[sock])
    finally:
        sock.close()
