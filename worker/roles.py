"""Queues by role: who carries what, and who consumes it.

=====================  ==========================================  =====================
queue                  carries                                     consumed by
=====================  ==========================================  =====================
``net.<name>``         request steps only                          that subnet's workers
``<prefix>control``    finalize, notices, monitor retries: Redis   every pmrunner worker
                       work that any host can do
=====================  ==========================================  =====================

Request steps come before reports. A run's report (``finalize_run``, the
chord callback) is sent at :data:`REPORT_PRIORITY`, kombu's lowest priority
on Redis: the transport keeps it in a list of its own
(``<prefix>control\x06\x169``), and every ``BRPOP`` of a worker names the
lists of priority 0 of all its queues before any list of a lower priority.
So when a thousand runs start together, a worker takes their first steps
before the reports of those that already ended; a report waits only while
request steps wait in a queue that worker consumes, and at most
``tasks.report_order.REPORT_WAIT_MAX`` (5 s): the upkeep then moves it
ahead of them. Steps routed to the control queue (pre-request scripts that
pick the host) keep priority 0.

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
# kombu's Redis transport serves priority 0 first and 9 last (the reverse of AMQP).
REPORT_PRIORITY = 9
PRIORITIES = {FINALIZE_RUN: REPORT_PRIORITY}


def control_routes(settings: Settings) -> dict[str, dict[str, str | int]]:
    """Celery ``task_routes``: bookkeeping tasks go to the control queue, reports last."""
    routes: dict[str, dict[str, str | int]] = {}
    for name in CONTROL_TASKS:
        routes[name] = {"queue": settings.control_queue}
        if name in PRIORITIES:
            routes[name]["priority"] = PRIORITIES[name]
    return routes


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
