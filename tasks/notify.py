"""Reporting a finished run: its webhooks get the monitor-run JSON, through the outbox.

Nothing is posted here: each URL becomes an outbox entry (``tasks.outbox``),
delivered with retries by whichever pmrunner process holds the upkeep lease.
"""

from __future__ import annotations

from typing import Any

from store import RunTicket
from tasks.context import Services
from tasks.outbox import enqueue

JSON = dict[str, Any]


def announce_run(services: Services, report: JSON, ticket: RunTicket) -> None:
    """Queue the report for the run's and the settings' webhooks; follow up monitor runs."""
    urls = list(dict.fromkeys([*ticket.webhooks, *services.settings.webhooks]))
    for url in urls:
        enqueue(services, url, report["id"])
    if ticket.monitor:
        from tasks.monitors import after_monitor_run  # monitors imports dispatch, which imports run

        after_monitor_run(services, report)
