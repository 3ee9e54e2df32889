"""Monitors as an operator sees them: schedule, next slot and last run.

Read-only, from what the API and the command line share with the scheduler:
the monitors of the configured source (for Postman, the catalog of the last
good poll; for a ``monitors.yaml``, the file; with no source configured, the
catalog whatever wrote it), the scheduler's sorted set of next slots, and
each monitor's newest stored run. Nothing here writes, and the scheduler's
tick is not involved.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from runtime.results import iso
from scheduler.monitors import Monitor
from store.runs import RunStore
from tasks.monitors import catalog_for, source_for
from worker.settings import Settings

JSON = dict[str, Any]


@dataclass(frozen=True)
class MonitorStatus:
    """One monitor and where it stands.

    Parameters:
        monitor: the monitor's definition.
        next_slot: when the scheduler starts it next (Unix seconds); None when
            no scheduler has scheduled it (paused, or no scheduler has polled).
        last_run: its newest stored run report; None before its first.
    """

    monitor: Monitor
    next_slot: float | None
    last_run: JSON | None

    def next_slot_time(self) -> datetime | None:
        """``next_slot`` as an aware datetime in UTC."""
        return None if self.next_slot is None else datetime.fromtimestamp(self.next_slot, UTC)


def known_monitors(settings: Settings) -> list[Monitor]:
    """The monitors of the configured source, else of the catalog; sorted by name.

    Raises:
        PmrunnerError: the configured source cannot be built.
    """
    source = source_for(settings)
    if source is not None:
        monitors = source.monitors()
    else:
        monitors = list(catalog_for(settings).monitors().values())
    return sorted(monitors, key=lambda monitor: (monitor.name.lower(), monitor.uid))


def monitor_statuses(
    settings: Settings, store: RunStore, uid: str | None = None
) -> list[MonitorStatus]:
    """Every known monitor's status (only ``uid``'s when given; empty when it is unknown)."""
    monitors = [m for m in known_monitors(settings) if uid is None or m.uid == uid]
    if not monitors:
        return []
    catalog = catalog_for(settings)
    pipe = catalog.redis.pipeline(transaction=False)
    for monitor in monitors:
        pipe.zscore(catalog.next_key, monitor.uid)
    slots = pipe.execute()
    last = store.last_runs(monitor.uid for monitor in monitors)
    return [
        MonitorStatus(monitor, None if slot is None else float(slot), last.get(monitor.uid))
        for monitor, slot in zip(monitors, slots, strict=True)
    ]


def status_json(status: MonitorStatus) -> JSON:
    """The API's ``MonitorSummary`` of one monitor."""
    monitor = status.monitor
    last = status.last_run
    return {
        "uid": monitor.uid,
        "name": monitor.name,
        "source": monitor.source,
        "active": monitor.active,
        "schedule": {**monitor.schedule.to_dict(), "description": monitor.schedule.describe()},
        "nextSlot": iso(status.next_slot_time()),
        "lastRun": None
        if last is None
        else {
            "id": last["id"],
            "status": last["status"],
            "startedAt": last["startedAt"],
            "finishedAt": last["finishedAt"],
            "collectionId": last["collectionId"],
        },
    }
