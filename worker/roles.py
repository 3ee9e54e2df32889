"""Queues by role: who carries what, and who consumes it.

=====================  ==========================================  =====================
queue                  carries                                     consumed by
=====================  ==========================================  =====================
``net.<name>``         request steps only                          that subnet's workers
``<prefix>control``    finalize, notices, monitor retries: Redis   every pmrunner worker
                       work that any host can do
=====================  ==========================================  =====================

Every worker reaches Redis, so every worker takes run bookkeeping: a
deployment of subnet workers alone (``-Q net.a``), with nothing on the
default network, still reports its runs. A worker adds the control queue to
whatever ``-Q`` names when it starts (``worker_init``). Sweeping overdue
runs, resolving lost workers and delivering webhooks need no queue at all:
an upkeep thread in every pmrunner process does them (``tasks.upkeep``).
"""

from __future__ import annotations

from typing import Any

from celery import Celery, signals

from worker.settings import Settings

FINALIZE_RUN = "pmrunner.finalize_run"
CONTROL_TASKS = (
    FINALIZE_RUN,
    "pmrunner.retry_monitor_run",
)


def control_routes(settings: Settings) -> dict[str, dict[str, str]]:
    """Celery ``task_routes``: bookkeeping tasks go to the control queue."""
    return {name: {"queue": settings.control_queue} for name in CONTROL_TASKS}


def settings_of(app: Celery) -> Settings:
    """The pmrunner settings an app was created with (from the environment otherwise)."""
    settings = getattr(app, "pmrunner_settings", None)
    return settings if isinstance(settings, Settings) else Settings.from_env()


def consume_control_queue(sender: Any = None, **_: Any) -> None:
    """Make every worker consume the control queue, whatever ``-Q`` it was given.

    Parameters:
        sender: the starting ``WorkController`` (its queues are selected by now).
    """
    app = getattr(sender, "app", None)
    if app is None or getattr(app, "main", None) != "pmrunner":
        return
    app.amqp.queues.select_add(settings_of(app).control_queue)


signals.worker_init.connect(consume_control_queue)
