"""Beat's side of monitors: start every due slot exactly once.

``celery -A worker beat`` sends ``dispatch_due`` every few seconds. It asks
the monitor source for the monitors, works out which schedule slots came due
since the last check (kept in Redis, so beat itself keeps no state), and
claims each slot with ``SET NX`` before starting it. Two beats, a restarted
beat or a retried dispatch therefore never start a slot twice.

A monitor whose check finds several slots due (the runner was down, or a
dispatch was late) runs only the latest; the older ones are recorded as
skipped, not run late. ``PMRUNNER_BACKFILL_SLOTS`` runs up to that many of
them instead.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime, timedelta

from celery import Task, shared_task

from scheduler.monitors import Monitor, MonitorSource
from tasks.context import Services
from tasks.monitors import known_monitors, source_for, start_monitor_run
from worker.metrics import SLOTS_SKIPPED, SLOTS_STARTED, SOURCE_HEALTHY

log = logging.getLogger(__name__)
SKIPPED_KEPT = 100
SLOT_CLAIM_SECONDS = 7 * 24 * 3600


def due_slots(
    services: Services, monitor: Monitor, now: datetime
) -> tuple[list[datetime], list[datetime]]:
    """The slots to start now and the slots to record as skipped.

    The check time moves forward in Redis; the first check of a monitor
    looks back one dispatch interval.
    """
    redis = services.registry.redis
    key = f"{services.registry.keys.prefix}monitor:{monitor.uid}:checked"
    previous = redis.getset(key, now.timestamp())
    redis.expire(key, SLOT_CLAIM_SECONDS)
    if previous is None:
        after = now - timedelta(seconds=services.settings.dispatch_interval * 2)
    else:
        after = datetime.fromtimestamp(float(previous), UTC)
    if after >= now:
        return [], []
    slots = monitor.schedule.slots_between(after, now)
    keep = 1 + max(services.settings.backfill_slots, 0)
    return slots[-keep:], slots[:-keep]


def slot_key(slot: datetime) -> str:
    return slot.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def dispatch(services: Services, source: MonitorSource, now: datetime | None = None) -> list[str]:
    """Start the due slots of every active monitor; return the run ids started."""
    now = now or datetime.now(UTC)
    source.refresh()
    SOURCE_HEALTHY.set(1 if source.healthy else 0)
    if not source.healthy:
        log.warning(
            "monitor source unhealthy (%s); running the last known monitors", source.last_error
        )
    started = []
    for monitor in known_monitors(services, source):
        if not monitor.active:
            continue
        run, skipped = due_slots(services, monitor, now)
        for slot in skipped:
            _record_skipped(services, monitor, slot, "a later slot was due when it was checked")
        for slot in run:
            claimed = services.registry.redis.set(
                services.registry.keys.slot(monitor.uid, slot_key(slot)),
                now.isoformat(),
                nx=True,
                ex=SLOT_CLAIM_SECONDS,
            )
            if not claimed:
                continue
            SLOTS_STARTED.inc()
            started.append(
                start_monitor_run(services.app, services, source, monitor, slot=slot_key(slot))
            )
    return started


def _record_skipped(services: Services, monitor: Monitor, slot: datetime, reason: str) -> None:
    key = services.registry.keys.slot(monitor.uid, slot_key(slot))
    if not services.registry.redis.set(key, "skipped", nx=True, ex=SLOT_CLAIM_SECONDS):
        return
    SLOTS_SKIPPED.inc()
    log.warning("monitor %s: slot %s skipped: %s", monitor.uid, slot.isoformat(), reason)
    skipped = f"{services.registry.keys.prefix}monitor:{monitor.uid}:skipped"
    pipe = services.registry.redis.pipeline()
    pipe.lpush(skipped, json.dumps({"slot": slot.isoformat(), "reason": reason}))
    pipe.ltrim(skipped, 0, SKIPPED_KEPT - 1)
    pipe.execute()


@shared_task(bind=True, name="pmrunner.dispatch_due", ignore_result=True)
def dispatch_due(self: Task) -> list[str]:
    """Beat entry: start the monitor runs that are due."""
    services = Services.of(self.app)
    source = source_for(services.settings)
    if source is None:
        return []
    return dispatch(services, source)


@shared_task(bind=True, name="pmrunner.retry_monitor_run", ignore_result=True)
def retry_monitor_run(
    self: Task, monitor: dict[str, object], attempt: int, slot: str | None
) -> str:
    """Run a monitor again after a failed attempt."""
    services = Services.of(self.app)
    source = source_for(services.settings)
    definition = Monitor.from_dict(monitor)
    if source is None:
        raise RuntimeError("no monitor source is configured on this worker")
    return start_monitor_run(self.app, services, source, definition, attempt=attempt, slot=slot)
