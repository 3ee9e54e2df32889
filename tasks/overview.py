"""Monitors as an operator sees them: schedule, next slot and last run.

Read-only, from what the API and the command line share with the scheduler:
the monitors (of a ``monitors.yaml`` when one is configured, else of the
catalog of the last good poll, whichever process polled), the scheduler's
sorted set of next slots, and each monitor's newest stored run. Nothing here
writes, and the scheduler's tick is not involved.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from runtime.results import iso
from scheduler.catalog import Catalog
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


def known_monitors(settings: Settings, catalog: Catalog) -> list[Monitor]:
    """The monitors of a ``monitors.yaml``, else of the catalog; sorted by name.

    Postman monitors come from the catalog whether or not this process is
    configured for Postman: runs start from the catalog's copy anyway.

    Raises:
        PmrunnerError: the monitors file cannot be read.
    """
    source = source_for(settings) if settings.monitors_file is not None else None
    monitors = source.monitors() if source is not None else list(catalog.monitors().values())
    return sorted(monitors, key=lambda monitor: (monitor.name.lower(), monitor.uid))


def monitor_statuses(
    settings: Settings, store: RunStore, catalog: Catalog | None = None, uid: str | None = None
) -> list[MonitorStatus]:
    """Every known monitor's status (only ``uid``'s when given; empty when it is unknown).

    Parameters:
        catalog: the catalog to read (by default the settings', on the shared Redis client).
    """
    catalog = catalog or catalog_for(settings)
    monitors = [m for m in known_monitors(settings, catalog) if uid is None or m.uid == uid]
    if not monitors:
        return []
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
