"""The worker's consumer: Celery's, made to survive the loss of its Redis connection.

When the broker connection drops, Celery closes the broken connection, and
kombu's Redis channel tries, while closing, to put the worker's
unacknowledged messages back through a connection pool it has just
released; later, the steps that were running finish and acknowledge their
messages through that same closed channel. Both raise ``AttributeError``,
which Celery treats as unrecoverable: the worker exits in the middle of its
requests. Here both are logged and the consumer reconnects as it should.
The messages stay unacknowledged in Redis; the steps they carry go on in
their threads and record their results, and should the broker deliver one
again later, the step bookkeeping drops it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from celery.worker.consumer import Consumer

log = logging.getLogger(__name__)


class ReconnectingConsumer(Consumer):  # type: ignore[misc]
    """Celery's consumer, which outlives a failed restore of unacknowledged messages."""

    def on_connection_error_after_connected(self, exc: Any) -> None:
        try:
            super().on_connection_error_after_connected(exc)
        except AttributeError as error:
            log.warning(
                "broker connection lost (%s); its unacknowledged messages stay in Redis"
                " (%s); reconnecting",
                exc,
                error,
            )

    def call_soon_ack(self, p: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Acknowledge (or reject) a message; one of a lost connection stays unacknowledged."""
        return super().call_soon_ack(_tolerant(p), *args, **kwargs)


def _tolerant(acknowledge: Callable[..., Any]) -> Callable[..., Any]:
    def call(*args: Any, **kwargs: Any) -> Any:
        try:
            return acknowledge(*args, **kwargs)
        except AttributeError as error:
            log.warning("a message of a lost broker connection stays unacknowledged (%s)", error)
            return None

    return call
