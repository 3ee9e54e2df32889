"""How ``pmrunner runner start`` and ``pmrunner up`` stop: one line of their own.

Celery's worker answers SIGINT and SIGTERM with lines of its own written
straight to the terminal (``worker: Warm shutdown (MainProcess)``,
``worker: Hitting Ctrl+C again will initiate cold shutdown ...``) among
pmrunner's output. The worker here stops as Celery's does (a warm shutdown
that lets the requests in progress finish; Ctrl-C again, a cold one), but
says so in one pmrunner line, and Celery's shutdown lines go to the log at
debug level.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading
from typing import Any

log = logging.getLogger("pmrunner.runner")

SIGNAL_NAMES = {"SIGINT": "Ctrl-C", "SIGTERM": "SIGTERM"}
_announced = threading.Event()


def stop_line(sig: str) -> str:
    """The one line a stop prints (``sig``: ``SIGINT`` or ``SIGTERM``)."""
    return f"stopping ({SIGNAL_NAMES.get(sig, sig)}): requests in progress finish first"


def say_at_debug(message: str, *_: Any, **__: Any) -> None:
    """Celery's shutdown line, to the log at debug level instead of the terminal."""
    log.debug("celery: %s", message.strip())


def announce_stop(sig: str) -> None:
    """Print the stop line, once per process; Celery's shutdown lines go to the log from now on.

    Runs in a signal handler: written with ``os.write``, as Celery writes its
    own, since a buffered stream may be in the middle of a write.

    Parameters:
        sig: the signal's name (``SIGINT``, ``SIGTERM``).
    """
    celery_worker = sys.modules.get("celery.apps.worker")
    if celery_worker is not None:  # a stop before the worker exists has none to quiet
        celery_worker.safe_say = say_at_debug  # type: ignore[attr-defined]
    if _announced.is_set():
        return
    _announced.set()
    stream = sys.__stdout__
    if stream is not None:
        # No terminal to tell (closed, gone): the stop goes on all the same.
        with contextlib.suppress(OSError, ValueError):
            os.write(stream.fileno(), f"{stop_line(sig)}\n".encode())


def quiet_stop_worker(worker_class: type[Any]) -> type[Any]:
    """``worker_class`` (an app's ``Worker``) with pmrunner's stop line for SIGINT and SIGTERM.

    Parameters:
        worker_class: ``app.Worker``; its SIGINT and SIGTERM handlers are
            Celery's, each with a callback that announces the stop first.
    """
    from celery.apps.worker import (
        install_worker_int_handler,
        install_worker_term_handler,
        on_SIGINT,
    )

    def on_interrupt(worker: Any) -> None:
        announce_stop("SIGINT")
        on_SIGINT(worker)  # Ctrl-C again: a cold shutdown

    def on_terminate(_worker: Any) -> None:
        announce_stop("SIGTERM")

    class QuietStopWorker(worker_class):  # type: ignore[misc]
        def install_platform_tweaks(self, worker: Any) -> None:
            super().install_platform_tweaks(worker)
            install_worker_term_handler(worker, callback=on_terminate)
            install_worker_int_handler(worker, callback=on_interrupt)

    QuietStopWorker.__name__ = QuietStopWorker.__qualname__ = worker_class.__name__
    return QuietStopWorker
