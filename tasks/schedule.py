"""The scheduler: a poll loop and a tick loop, inside every beat and runner process.

``celery -A worker beat`` (and the beat embedded in ``pmrunner runner start``
and ``pmrunner up``) starts two threads when beat starts (Celery's
``beat_init`` signal):

- the **poller** (:class:`scheduler.poller.Poller`): one for the whole
  cluster, by lease; it reads the monitor source into the catalog every
  ``PMRUNNER_POLL_INTERVAL`` seconds;
- the **tick** (:class:`Ticker`): wakes at the next due slot (at least once
  a second), reads the due monitors from the catalog's sorted set of next
  slots (no network call), claims each slot and moves the monitor to its
  next slot in one round trip (``SET NX``: two beats never start a slot
  twice), and starts the run itself: no worker has to consume anything for
  a run to start on time. One thread, so a tick never overlaps the next.

A monitor whose check finds several slots due (the scheduler was down)
runs only the latest; the older ones are recorded as skipped, not run late.
``PMRUNNER_BACKFILL_SLOTS`` runs up to that many of them instead.
"""

from __future__ import annotations

import functools
import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import redis
from celery import Celery, Task, shared_task
from celery.signals import beat_init

from pmrunner.errors import PmrunnerError
from scheduler.catalog import Catalog
from scheduler.health import SourceHealth, read_health
from scheduler.local_source import LocalMonitorSource
from scheduler.monitors import Monitor, MonitorSource
from scheduler.poller import Lease, Poller
from scheduler.snapshot import Snapshot
from tasks.context import Services
from tasks.monitors import (
    build_source,
    catalog_for,
    opened_monitor,
    prepare_monitor_run,
    refuse_start,
    source_for,
    start_monitor_run,
)
from worker.metrics import SLOT_LAG, SLOTS_SKIPPED, SLOTS_STARTED

log = logging.getLogger(__name__)
SKIPPED_KEPT = 100
SLOT_CLAIM_SECONDS = 7 * 24 * 3600
# Slots looked at when a monitor is found late (a scheduler that was down).
LATE_SLOTS_LIMIT = 100
# Seconds before its slot a run is claimed and prepared (planned, registered),
# so that at the slot only its messages are sent.
LOOKAHEAD = 1.0
LEASE_SECONDS = 15.0
LATE_REASON = "a later slot was due when it was checked"
LOCAL_POLL_INTERVAL = 2.0
PERMANENT_BACKOFF = 300.0


def slot_key(slot: datetime) -> str:
    return slot.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


class Ticker:
    """Starts due slots from the catalog.

    Args:
        services: Redis services of the app runs are sent through.
        catalog: the monitor catalog.
        source: what runs start from (the catalog for Postman, files for local).
        health: the source's current health (decides whether stale data may run).
        clock: the Unix time.
    """

    def __init__(
        self,
        services: Services,
        catalog: Catalog,
        source: MonitorSource,
        health: Callable[[], SourceHealth],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.services = services
        self.catalog = catalog
        self.source = source
        self.health = health
        self.clock = clock

    def tick(self, now: float | None = None) -> tuple[list[str], float | None]:
        """Start what is due by ``now``; the run ids started and when the next slot comes.

        Slots due within :data:`LOOKAHEAD` seconds are claimed and their runs
        prepared now; each run is sent at its slot's time.
        """
        now = self.clock() if now is None else now
        due = self.catalog.due(now + LOOKAHEAD)
        if not due.due:
            return [], due.next_at
        health = self.health()
        monitors = self.catalog.monitors(due.version)
        launches: list[tuple[float, Callable[[], str]]] = []
        next_at = due.next_at
        for uid, slot in due.due:
            monitor = monitors.get(uid)
            if monitor is None or not monitor.active:
                self.catalog.redis.zrem(self.catalog.next_key, uid)
                continue
            following = self._claim_due(monitor, slot, now, health, launches)
            next_at = following if next_at is None else min(next_at, following)
        started = []
        for at, launch in sorted(launches, key=lambda pair: pair[0]):
            wait = at - self.clock()
            if wait > 0:
                time.sleep(wait)
            started.append(launch())
        return started, next_at

    def _claim_due(
        self,
        monitor: Monitor,
        slot: int,
        now: float,
        health: SourceHealth,
        launches: list[tuple[float, Callable[[], str]]],
    ) -> float:
        """Claim a due monitor's slot(s) and prepare their runs; the Unix time of its next slot."""
        moment = datetime.fromtimestamp(max(now, slot), UTC)
        first = datetime.fromtimestamp(slot, UTC)
        slots = [first, *monitor.schedule.slots_between(first, moment, limit=LATE_SLOTS_LIMIT)]
        keep = 1 + max(self.services.settings.backfill_slots, 0)
        to_run, skipped = slots[-keep:], slots[:-keep]
        following = int(monitor.schedule.next_slot(moment).timestamp())
        keys = self.services.registry.keys
        claim = keys.slot(monitor.uid, slot_key(to_run[-1]))
        outcome = self.catalog.claim(monitor.uid, slot, following, claim, SLOT_CLAIM_SECONDS)
        if outcome < 0:
            return following
        for late in skipped:
            _record_skipped(self.services, monitor, late, LATE_REASON)
        redis_client = self.services.registry.redis
        for earlier in to_run[:-1]:  # backfilled slots, claimed one by one
            if redis_client.set(keys.slot(monitor.uid, slot_key(earlier)), "backfill", nx=True):
                launches.append((earlier.timestamp(), self._prepare(monitor, earlier, health)))
        if outcome == 1:
            launches.append((to_run[-1].timestamp(), self._prepare(monitor, to_run[-1], health)))
        return following

    def _prepare(self, monitor: Monitor, slot: datetime, health: SourceHealth) -> Callable[[], str]:
        """What starts the slot's run when called (or stores why it could not start)."""
        slot_name = slot_key(slot)
        if health.runs_monitors:
            start = prepare_monitor_run(
                self.services.app,
                self.services,
                self.source,
                monitor,
                slot=slot_name,
                start_at=slot.timestamp(),
            )
        else:
            reason = PmrunnerError(f"the monitor source is {health.state}: {health.reason}")
            start = functools.partial(
                refuse_start,
                self.services,
                monitor,
                f"{slot_name}-{monitor.uid}",
                reason,
                slot_name,
            )

        def launch() -> str:
            SLOTS_STARTED.inc()
            SLOT_LAG.observe(max(0.0, self.clock() - slot.timestamp()))
            return start()

        return launch

    def run(self, stop: threading.Event) -> None:
        """Tick until ``stop`` is set, waking just before the next slot (at least every second)."""
        failing = False
        while not stop.is_set():
            next_at: float | None = None
            try:
                _, next_at = self.tick()
                failing = False
            except (redis.RedisError, OSError) as error:
                if not failing:
                    log.warning("scheduler tick: Redis failed: %s; trying again", error)
                failing = True
            wait = 1.0 if next_at is None else next_at - LOOKAHEAD - self.clock()
            stop.wait(min(1.0, max(0.0, wait)))


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


@dataclass
class Scheduler:
    """The poller and the tick of one process; :meth:`start` runs them in threads."""

    poller: Poller
    ticker: Ticker
    stop_event: threading.Event

    def start(self) -> None:
        for name, target in (("poller", self.poller.run), ("tick", self.ticker.run)):
            thread = threading.Thread(
                target=target, args=(self.stop_event,), name=f"pmrunner-{name}", daemon=True
            )
            thread.start()

    def stop(self) -> None:
        self.stop_event.set()


def build_scheduler(app: Celery) -> Scheduler | None:
    """The scheduler for the app's settings; None when no monitor source is configured."""
    services = Services.of(app)
    settings = services.settings
    polled = build_source(settings)
    source = source_for(settings)
    if polled is None or source is None:
        return None
    catalog = catalog_for(settings)
    interval = settings.poll_interval
    if isinstance(polled, LocalMonitorSource):
        interval = min(interval, LOCAL_POLL_INTERVAL)
        local = polled

        def snapshot() -> Snapshot:
            return Snapshot(monitors={monitor.uid: monitor for monitor in local.monitors()})

        restore = None
    else:
        snapshot, restore = polled.snapshot, polled.restore
    poller = Poller(
        polled,
        catalog,
        Lease(catalog.redis, f"{settings.key_prefix}poll:lease", LEASE_SECONDS),
        interval=interval,
        permanent_backoff=PERMANENT_BACKOFF,
        snapshot=snapshot,
        restore=restore,
    )

    def health() -> SourceHealth:
        return read_health(
            catalog.redis,
            catalog.prefix,
            time.time(),
            poll_interval=interval,
            max_staleness=settings.max_staleness,
        )

    return Scheduler(poller, Ticker(services, catalog, source, health), threading.Event())


_started: dict[int, Scheduler] = {}
_started_lock = threading.Lock()


@beat_init.connect
def start_scheduler_with_beat(sender: object = None, **_: object) -> None:
    """Run the poller and the tick inside the beat process (embedded or not)."""
    app = getattr(sender, "app", None)
    if not isinstance(app, Celery):
        return
    with _started_lock:
        if id(app) in _started:
            return
        try:
            scheduler = build_scheduler(app)
        except PmrunnerError as error:
            log.error("monitor scheduler not started: %s", error)
            return
        if scheduler is None:
            log.info("no monitor source configured: beat schedules no monitors")
            return
        scheduler.start()
        _started[id(app)] = scheduler
        log.info("monitor scheduler started (poll every %.0f s)", scheduler.poller.interval)


@shared_task(bind=True, name="pmrunner.retry_monitor_run", ignore_result=True)
def retry_monitor_run(
    self: Task, monitor: dict[str, object], attempt: int, slot: str | None
) -> str:
    """Run a monitor again after a failed attempt, unless it was paused or deleted since."""
    services = Services.of(self.app)
    source = source_for(services.settings)
    definition = opened_monitor(monitor, services.registry.sealer)  # its webhooks travel sealed
    if source is None:
        raise RuntimeError("no monitor source is configured on this worker")
    current = {known.uid: known for known in source.monitors()}.get(definition.uid)
    if current is None or not current.active:
        log.info("monitor %s: not retried, it is paused or deleted", definition.uid)
        return ""
    return start_monitor_run(self.app, services, source, definition, attempt=attempt, slot=slot)
