"""The scheduler: a poll loop and a tick loop, inside every beat and runner process.

``celery -A worker beat`` (and the beat embedded in ``pmrunner runner start``
and ``pmrunner up``) starts two threads when beat starts (Celery's
``beat_init`` signal):

- the **poller** (:class:`scheduler.poller.Poller`): one for the whole
  cluster, by lease; it reads the monitor source into the catalog every
  ``PMRUNNER_POLL_INTERVAL`` seconds;
- the **tick** (:class:`Ticker`): wakes at the next due slot (at least once
  a second), reads the monitors due within the next few seconds from the
  catalog's sorted set of next slots (no network call), prepares their runs
  ahead, and at each slot starts the runs due together in one round trip
  that claims every slot (``SET NX``: two beats never start a slot twice)
  and sends every message (:mod:`tasks.launches`). No worker has to consume
  anything for a run to start on time. One thread, so a tick never overlaps
  the next.

A monitor whose check finds several slots due (the scheduler was down)
runs only the latest; the older ones are recorded as skipped, not run late.
``PMRUNNER_BACKFILL_SLOTS`` runs up to that many of them instead.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import redis
from celery import Celery, Task, shared_task
from celery.signals import beat_init

from pmrunner.errors import PmrunnerError
from scheduler.catalog import Catalog, Due
from scheduler.health import SourceHealth, read_health
from scheduler.local_source import LocalMonitorSource
from scheduler.monitors import Monitor, MonitorSource
from scheduler.poller import Lease, Poller
from scheduler.snapshot import Snapshot
from store.launch import Gate, Slots
from tasks.context import Services
from tasks.launches import (
    LOOKAHEAD,
    SLOT_CLAIM_SECONDS,
    Pending,
    Templates,
    prepare,
    slot_key,
    start,
)
from tasks.monitors import (
    build_source,
    catalog_for,
    opened_monitor,
    source_for,
    start_monitor_run,
)
from worker.metrics import SLOT_LAG, SLOTS_STARTED

log = logging.getLogger(__name__)
# Slots looked at when a monitor is found late (a scheduler that was down).
LATE_SLOTS_LIMIT = 100
# Slots of one monitor prepared ahead at most (a per-second monitor has LOOKAHEAD of them).
MAX_AHEAD = 64
LEASE_SECONDS = 15.0
LOCAL_POLL_INTERVAL = 2.0
PERMANENT_BACKOFF = 300.0


def _claimant() -> str:
    """What a slot's claim key says about who claimed it."""
    return f"{socket.gethostname()}:{os.getpid()}"


class Ticker:
    """Starts due slots from the catalog (see :mod:`tasks.launches`).

    Args:
        services: Redis services of the app runs are sent through.
        catalog: the monitor catalog.
        source: what runs start from (the catalog for Postman, files for local).
        health: the source's current health (decides whether stale data may run).
        clock: the Unix time.
        observer: called with each started run id, its slot and the time it was sent.
    """

    def __init__(
        self,
        services: Services,
        catalog: Catalog,
        source: MonitorSource,
        health: Callable[[], SourceHealth],
        clock: Callable[[], float] = time.time,
        observer: Callable[[str, float, float], None] | None = None,
    ) -> None:
        self.services = services
        self.catalog = catalog
        self.source = source
        self.health = health
        self.clock = clock
        self.observer = observer
        self.templates = Templates(services, source)
        self.pending: dict[tuple[str, float], Pending] = {}
        # uid -> the slot after the last one waiting here
        self.frontier: dict[str, int] = {}
        self.slots = Slots(catalog.next_key, catalog.version_key, SLOT_CLAIM_SECONDS, _claimant())

    def tick(self, now: float | None = None) -> tuple[list[str], float | None]:
        """One round: find slots up to :data:`LOOKAHEAD` ahead, start those
        whose time has come, prepare the others; the run ids started and when
        the next slot comes."""
        now = self.clock() if now is None else now
        due = self.catalog.due(now + LOOKAHEAD)
        if due.due:
            self._take(due, now)
        started = self._start_due()
        self._prepare_ahead()
        upcoming = [pending.at for pending in self.pending.values()]
        if due.next_at is not None:
            upcoming.append(due.next_at - LOOKAHEAD)
        return started, min(upcoming) if upcoming else None

    def _take(self, due: Due, now: float) -> None:
        """Note every slot of the due monitors up to the lookahead.

        A monitor whose stored next slot is already waiting here only has its
        waiting slots extended to the new horizon (no schedule is computed
        for it otherwise, however often the tick reads it).
        """
        monitors = self.catalog.monitors(due.version)
        horizon = now + LOOKAHEAD
        for uid, score in due.due:
            if (uid, float(score)) in self.pending:
                frontier = self.frontier.get(uid)
                if frontier is not None and frontier <= horizon:
                    known = monitors.get(uid)
                    if known is not None:
                        self._add(self._ahead(known, frontier, horizon, due.version))
                continue
            monitor = monitors.get(uid)
            if monitor is None or not monitor.active:
                self.catalog.redis.zrem(self.catalog.next_key, uid)
                continue
            if score < now:
                self._add(self._late(monitor, score, now, due.version))
                score = self.frontier[uid]
            self._add(self._ahead(monitor, score, horizon, due.version))

    def _add(self, found: list[Pending]) -> None:
        for pending in found:
            self.pending.setdefault((pending.monitor.uid, pending.at), pending)
            self.frontier[pending.monitor.uid] = pending.gate.following

    def _late(self, monitor: Monitor, score: int, now: float, version: int) -> list[Pending]:
        """The run of a monitor found late: only the latest slot past runs (plus
        up to ``backfill_slots`` before it); the older ones are recorded as skipped."""
        first = datetime.fromtimestamp(score, UTC)
        keys = self.services.registry.keys
        moment = datetime.fromtimestamp(now, UTC)
        late = [first, *monitor.schedule.slots_between(first, moment, limit=LATE_SLOTS_LIMIT)]
        keep = 1 + max(self.services.settings.backfill_slots, 0)
        skipped, to_run = late[:-keep], late[-keep:]
        following = int(monitor.schedule.next_slot(moment).timestamp())
        found = []
        for earlier in to_run[:-1]:  # backfilled slots: their claim alone
            gate = Gate("", 0, following, keys.slot(monitor.uid, slot_key(earlier)))
            found.append(Pending(monitor, earlier, gate, version))
        claim = keys.slot(monitor.uid, slot_key(to_run[-1]))
        gate = Gate(monitor.uid, score, following, claim)
        found.append(Pending(monitor, to_run[-1], gate, version, skipped))
        return found

    def _ahead(self, monitor: Monitor, score: int, horizon: float, version: int) -> list[Pending]:
        """``monitor``'s slots from ``score`` up to ``horizon``, each gated on being next."""
        keys = self.services.registry.keys
        found: list[Pending] = []
        while score <= horizon and len(found) < MAX_AHEAD:
            slot = datetime.fromtimestamp(score, UTC)
            following = int(monitor.schedule.next_slot(slot).timestamp())
            gate = Gate(monitor.uid, score, following, keys.slot(monitor.uid, slot_key(slot)))
            found.append(Pending(monitor, slot, gate, version))
            score = following
        return found

    def _start_due(self) -> list[str]:
        """Start every slot whose time has come, in one round trip."""
        now = self.clock()
        due = sorted(
            (pending for pending in self.pending.values() if pending.at <= now),
            key=lambda pending: pending.at,
        )
        if not due:
            return []
        for pending in due:
            del self.pending[(pending.monitor.uid, pending.at)]
        due = self._latest_only(due)
        for pending in due:
            if not pending.prepared:
                prepare(self.templates, pending)

        def version() -> tuple[int, dict[str, Monitor]]:
            current = self.catalog.version()
            return current, self.catalog.monitors(current)

        started = start(self.services, self.slots, due, version, self.templates, self._refusal)
        sent = self.clock()
        for one in started:
            SLOTS_STARTED.inc()
            SLOT_LAG.observe(max(0.0, sent - one.pending.at))
            if self.observer is not None:
                self.observer(one.run_id, one.pending.at, sent)
        return [one.run_id for one in started]

    def _latest_only(self, due: list[Pending]) -> list[Pending]:
        """Of several due slots of one monitor (the tick came late), only the
        latest runs (plus up to ``backfill_slots`` before it); the older ones are
        recorded as skipped, not run late."""
        by_monitor: dict[str, list[Pending]] = {}
        for pending in due:  # in slot order
            by_monitor.setdefault(pending.monitor.uid, []).append(pending)
        keep = 1 + max(self.services.settings.backfill_slots, 0)
        kept: list[Pending] = []
        for slots in by_monitor.values():
            if len(slots) == 1 or slots[0].gate.member == "":
                kept.extend(slots)
                continue
            latest, first = slots[-1], slots[0]
            latest.skipped = [*first.skipped, *(p.slot for p in slots[:-keep])]
            for earlier in slots[-keep:-1]:  # backfilled: their claim alone
                earlier.gate = Gate("", 0, earlier.gate.following, earlier.gate.claim_key)
                kept.append(earlier)
            gate = latest.gate
            latest.gate = Gate(gate.member, first.gate.due, gate.following, gate.claim_key)
            kept.append(latest)
        return sorted(kept, key=lambda pending: pending.at)

    def _refusal(self) -> Exception | None:
        health = self.health()
        if health.runs_monitors:
            return None
        return PmrunnerError(f"the monitor source is {health.state}: {health.reason}")

    def _prepare_ahead(self) -> None:
        """Prepare waiting runs, soonest first, until the soonest one is due."""
        waiting = sorted(
            (pending for pending in self.pending.values() if not pending.prepared),
            key=lambda pending: pending.at,
        )
        for pending in waiting:
            if pending.at <= self.clock():
                return
            prepare(self.templates, pending)

    def run(self, stop: threading.Event) -> None:
        """Tick until ``stop`` is set, waking at the next slot (at least every second)."""
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
            wait = 1.0 if next_at is None else next_at - self.clock()
            stop.wait(min(1.0, max(0.0, wait)))


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
