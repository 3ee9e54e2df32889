"""Reporting a finished run: webhooks get the monitor-run JSON.

Webhook delivery is its own task, retried with backoff, so a slow or
failing receiver never holds up a finalizer.
"""

from __future__ import annotations

import logging
from typing import Any

import requests
from celery import Task, shared_task

from pmrunner.errors import EgressBlockedError
from runtime.reporters.run_shapes import monitor_run_result
from store import RunTicket
from tasks.context import Services
from tasks.egress import webhook_session
from worker.settings import Settings

log = logging.getLogger(__name__)
JSON = dict[str, Any]
WEBHOOK_TIMEOUT_SECONDS = 10


def announce_run(services: Services, report: JSON, ticket: RunTicket) -> None:
    """Send the report to the run's and the settings' webhooks; follow up monitor runs."""
    urls = list(dict.fromkeys([*ticket.webhooks, *services.settings.webhooks]))
    for url in urls:
        services.app.send_task(
            "pmrunner.deliver_webhook",
            (url, report["id"]),
            queue=services.settings.queue_for(services.settings.default_network),
        )
    if ticket.monitor:
        from tasks.monitors import after_monitor_run  # monitors imports dispatch, which imports run

        after_monitor_run(services, report)


# Delivery is retried with backoff on connection errors and 5xx answers.
DELIVERY = {
    "bind": True,
    "autoretry_for": (requests.RequestException,),
    "retry_backoff": True,
    "retry_backoff_max": 300,
    "max_retries": 5,
    "ignore_result": True,
}


def post_json(url: str, payload: JSON, what: str, settings: Settings | None = None) -> None:
    """POST ``payload`` under the runner's egress policy; raise on 5xx (to retry), log a 4xx.

    A webhook the egress policy refuses is logged, not retried.
    """
    with webhook_session(settings or Settings.from_env()) as session:
        try:
            response = session.post(url, json=payload, timeout=WEBHOOK_TIMEOUT_SECONDS)
        except EgressBlockedError as error:
            log.warning("webhook %s: %s", url, error)
            return
    if response.status_code >= 500:
        raise requests.HTTPError(f"webhook {url} answered {response.status_code}")
    if response.status_code >= 400:
        log.warning("webhook %s refused %s: %s", url, what, response.status_code)


@shared_task(name="pmrunner.deliver_webhook", **DELIVERY)
def deliver_webhook(self: Task, url: str, run_id: str) -> None:
    """POST the run's monitor-run JSON to ``url`` (read from the store: messages stay small)."""
    report = Services.of(self.app).store.get(run_id)
    if report is None:
        log.warning("webhook %s: run %s is no longer stored", url, run_id)
        return
    settings = Services.of(self.app).settings
    post_json(url, monitor_run_result(report), f"run {run_id}", settings)


@shared_task(name="pmrunner.deliver_json", **DELIVERY)
def deliver_json(self: Task, url: str, payload: JSON) -> None:
    """POST a notice (monitor failing or recovered) to ``url``."""
    post_json(url, payload, f"notice {payload.get('event')}", Services.of(self.app).settings)
