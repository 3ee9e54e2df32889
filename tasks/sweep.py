"""The sweeper: ends runs that passed their deadline, so every run reports.

A worker killed mid-request, or a queue that no worker consumes, leaves a
chord that never completes. Beat runs ``sweep_overdue`` every few seconds;
it finalizes each overdue run with the steps that did not run marked as
errors. The finalizer's ``SET NX`` keeps this from reporting a run twice.
"""

from __future__ import annotations

import logging

from celery import Task, shared_task

from tasks.context import Services
from tasks.finalize import finalize

log = logging.getLogger(__name__)


def sweep(services: Services, now: float | None = None) -> list[str]:
    """Finalize every overdue run; return the ids this call reported."""
    reported = []
    for run_id in services.registry.overdue(now):
        report = finalize(services, run_id, swept=True)
        if report is None:
            services.registry.redis.zrem(services.registry.keys.active_runs(), run_id)
            continue
        log.warning("run %s passed its deadline; reported as %s", run_id, report["status"])
        reported.append(run_id)
    return reported


@shared_task(bind=True, name="pmrunner.sweep_overdue", ignore_result=True)
def sweep_overdue(self: Task) -> list[str]:
    """Beat entry: finalize runs past their deadline."""
    return sweep(Services.of(self.app))
