"""Sweeping: ends runs that passed their deadline, so every run reports.

A queue that no worker consumes, or a step lost where no heartbeat tells,
leaves a run unfinished. The upkeep thread (``tasks.upkeep``) sweeps every
``PMRUNNER_SWEEP_INTERVAL`` seconds, in whichever pmrunner process holds
its lease (a worker, the scheduler, the API): each overdue run is
finalized with the steps that did not run marked as errors. The
finalizer's ``SET NX`` keeps a run from being reported twice.
"""

from __future__ import annotations

import logging

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
