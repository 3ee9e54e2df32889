"""A worker or beat whose secret key is not its Redis's refuses to start.

Checked when the process starts (``worker_init``, ``beat_init``), before it
takes any step: a host that was not given the cluster's key stops with one
line instead of failing every step it takes (see :mod:`store.secret_key`).
"""

from __future__ import annotations

from typing import Any

from celery import signals

from pmrunner.errors import ConfigurationError
from tasks.context import sealer_for
from worker.roles import settings_of


def refuse_another_key(sender: Any = None, **_: Any) -> None:
    """Exit the starting worker or beat when Redis is used with another secret key."""
    app = getattr(sender, "app", None)
    if app is None or getattr(app, "main", None) != "pmrunner":
        return
    try:
        sealer_for(settings_of(app))
    except ConfigurationError as error:
        # SystemExit, not an error: Celery logs and ignores what a signal handler raises.
        raise SystemExit(f"pmrunner: {error}") from None


signals.worker_init.connect(refuse_another_key)
signals.beat_init.connect(refuse_another_key)
