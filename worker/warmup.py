"""A worker prepares its script contexts before it consumes.

Booting a script context (a V8 isolate with Postman's sandbox) takes about
0.2 s of CPU. A worker that booted them on demand made its first steps wait;
this handler, on Celery's ``worker_init`` signal (sent once the worker is set
up, before its consumer starts), sizes the process's context pool from the
settings and boots the warm contexts, so the first request costs what the
thousandth does.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from celery import signals

from worker.settings import Settings

log = logging.getLogger(__name__)


def settings_for(sender: Any) -> Settings:
    """The settings of the app the signal's worker runs."""
    settings = getattr(getattr(sender, "app", None), "pmrunner_settings", None)
    return settings if isinstance(settings, Settings) else Settings.from_env()


def prepare_script_contexts(sender: Any = None, **_: Any) -> None:
    """Size the script-context pool from the settings and boot the warm contexts.

    Parameters:
        sender: the worker (its ``app`` carries pmrunner's settings).
    """
    # Only workers load V8: beat, Flower and the API import this module too.
    from runtime.sandbox.pool import default_pool

    settings = settings_for(sender)
    pool = default_pool()
    pool.configure(
        capacity=settings.script_contexts or None,
        warm=settings.script_contexts_warm,
        idle_seconds=settings.script_context_idle,
        console_chars=settings.script_console_chars,
    )
    started = time.monotonic()
    ready = pool.warm_up()
    log.info(
        "script contexts: %d warm of at most %d, booted in %.2f s",
        ready,
        pool.capacity,
        time.monotonic() - started,
    )


signals.worker_init.connect(prepare_script_contexts)
