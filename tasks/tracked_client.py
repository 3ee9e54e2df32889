"""The HTTP client of a step: it notes each request in Redis before it goes out.

One client per worker thread and run options, kept from step to step.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from runtime.exchange import HttpResponse, OutgoingRequest
from runtime.http_client import HttpClient
from runtime.options import RunOptions

__all__ = ["SAFE_METHODS", "TrackedClient", "client_for_this_thread"]

_local = threading.local()
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})


class TrackedClient(HttpClient):
    """An HTTP client that tells ``on_send`` before a request goes out.

    The step notes in Redis that its request was sent (and with which
    method), so a worker lost afterwards is never taken to have sent
    nothing: its unsafe requests are not sent twice. Noted once per step,
    and again when an unsafe method follows a safe one.
    """

    on_send: Callable[[OutgoingRequest], None] | None = None
    _noted: str | None = None

    def send(self, request: OutgoingRequest, **options: Any) -> HttpResponse:
        if self.on_send is not None:
            method = request.method.upper()
            if self._noted is None or (self._noted in SAFE_METHODS and method not in SAFE_METHODS):
                self.on_send(request)
                self._noted = method
        return super().send(request, **options)

    def begin_step(
        self, on_send: Callable[[OutgoingRequest], None] | None, noted: str = ""
    ) -> None:
        """Start tracking a new step's sends (None: stop tracking); ``noted``: the method
        already noted as sent for it, if any."""
        self.on_send, self._noted = on_send, noted or None


def client_for_this_thread(options: RunOptions) -> TrackedClient:
    """An HTTP client per worker thread and run options.

    Reusing it keeps connections (and TLS sessions) open from one step to the
    next; the cookie jar is emptied around every step, since cookies belong to
    the run and travel in its state.
    """
    clients: dict[RunOptions, TrackedClient] = _local.__dict__.setdefault("clients", {})
    client = clients.get(options)
    if client is None:
        if len(clients) >= 8:
            clients.pop(next(iter(clients))).close()
        client = clients[options] = TrackedClient(options)
    return client
