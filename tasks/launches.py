"""Monitor runs prepared ahead of their slots, and started at them in batches.

The tick finds slots up to :data:`LOOKAHEAD` seconds ahead. For each it
prepares the run at once (:class:`Pending`): the work a run's start costs
(reading the collection, parsing, planning, routing, sealing) is done once
per *template*, that is per monitor inputs (collection and environment
revision, overrides, options, network pin), and reused for every run built
from the same inputs; a run adds only its ids, times, ticket and messages.

Nothing is claimed ahead. At the slot, the runs due together start in one
round trip (:mod:`store.launch`): for each, the monitor's next slot must still
be this one, the slot's claim key is set ``NX``, and only then are the run's
writes and messages applied, atomically. So a scheduler that stops with runs
prepared loses no slot (another scheduler still finds it due), and two
schedulers never start a slot twice. The batch also checks the catalog
version the runs were checked against: a poll that changed the catalog in
between makes the tick check the runs again (a paused, removed or
rescheduled monitor is dropped, an edited one is prepared again) before the
slot starts.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from pmrunner.errors import PmrunnerError
from scheduler.monitors import Monitor, MonitorSource
from store.launch import STALE, Gate, Launch, Slots
from tasks.context import Services
from tasks.dispatch import PreparedRun, RunRequest, RunTemplate, build_template, launcher
from tasks.monitors import monitor_meta, refuse_start, run_options
from worker.metrics import SLOTS_SKIPPED

log = logging.getLogger(__name__)

# Seconds before its slot a run is prepared (so that at the slot only its
# writes are sent). Runs prepared ahead cost memory only; nothing is claimed.
LOOKAHEAD = 5.0
SLOT_CLAIM_SECONDS = 7 * 24 * 3600
SKIPPED_KEPT = 100
LATE_REASON = "a later slot was due when it was checked"
TEMPLATES_KEPT = 512
STALE_RETRIES = 3


def slot_key(slot: datetime) -> str:
    return slot.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


@dataclass
class Pending:
    """One slot of one monitor, waiting for its time.

    Parameters:
        monitor: the monitor as the catalog had it when last checked.
        slot: the slot.
        gate: what the start must win (the monitor's score, its next slot, the claim key).
        skipped: older slots recorded as skipped once this one starts.
        version: the catalog version it was checked against.
        inputs: the template inputs it was prepared from.
        run: the prepared run, or None while not prepared (or when it cannot start).
        error: why it cannot start, recorded as a failed run at the slot.
    """

    monitor: Monitor
    slot: datetime
    gate: Gate
    version: int
    skipped: list[datetime] = field(default_factory=list)
    inputs: Hashable | None = None
    run: PreparedRun | None = None
    error: Exception | None = None

    @property
    def at(self) -> float:
        return self.slot.timestamp()

    @property
    def prepared(self) -> bool:
        return self.run is not None or self.error is not None


@dataclass
class Started:
    """A slot whose run this scheduler started."""

    pending: Pending
    run_id: str


class Templates:
    """Run templates by their inputs, most recent kept (see the module documentation)."""

    def __init__(self, services: Services, source: MonitorSource) -> None:
        self.services = services
        self.source = source
        self._kept: OrderedDict[Hashable, RunTemplate] = OrderedDict()

    def inputs(self, monitor: Monitor, version: int) -> Hashable | None:
        """What a run of ``monitor`` is built from; None when the source cannot tell."""
        revision: Callable[[Monitor, int], Hashable] | None = getattr(self.source, "revision", None)
        found = revision(monitor, version) if revision is not None else None
        if found is None:
            return None
        key = (monitor.collection, monitor.environment, monitor.options, monitor.network)
        return key, found

    def template(self, monitor: Monitor, inputs: Hashable | None) -> RunTemplate:
        """The template for ``monitor``'s inputs, built when not kept.

        Raises:
            PmrunnerError: the collection or environment cannot be had or used.
        """
        if inputs is not None and inputs in self._kept:
            self._kept.move_to_end(inputs)
            return self._kept[inputs]
        request = RunRequest(
            collection=self.source.collection(monitor),
            environment=self.source.environment(monitor),
            options=run_options(monitor, self.services.settings),
            network_pin=monitor.network,
        )
        template = build_template(self.services.app, request)
        if inputs is not None:
            self._kept[inputs] = template
            while len(self._kept) > TEMPLATES_KEPT:
                self._kept.popitem(last=False)
        return template


def prepare(templates: Templates, pending: Pending) -> None:
    """Build ``pending``'s run (or note why it cannot start)."""
    monitor = pending.monitor
    pending.inputs = templates.inputs(monitor, pending.version)
    pending.run, pending.error = None, None
    try:
        template = templates.template(monitor, pending.inputs)
        name = slot_key(pending.slot)
        pending.run = template.prepare(
            uuid.uuid4().hex,
            source="monitor",
            monitor=monitor_meta(monitor, 1, name, templates.services.registry.sealer),
            webhooks=list(monitor.webhooks),
            start_at=pending.at,
            resend_unsafe=monitor.resend_unsafe,
        )
    except PmrunnerError as error:
        pending.error = error
    except Exception as error:  # a run that cannot be prepared must not stop the tick
        log.exception("monitor %s: preparing slot %s failed", monitor.uid, pending.slot)
        pending.error = error


def recheck(
    templates: Templates, pending: Pending, monitors: dict[str, Monitor], version: int
) -> bool:
    """Bring ``pending`` up to catalog ``version``; False when its slot no longer runs.

    A monitor paused, removed or given another schedule drops the slot (the
    poll already moved its place in the schedule); an edited monitor or
    changed content prepares the run again.
    """
    if pending.version == version:
        return True
    current = monitors.get(pending.monitor.uid)
    if current is None or not current.active or current.schedule != pending.monitor.schedule:
        return False
    changed = current != pending.monitor
    pending.monitor, pending.version = current, version
    if changed or templates.inputs(current, version) != pending.inputs:
        prepare(templates, pending)
    return True


def start(
    services: Services,
    slots: Slots,
    due: list[Pending],
    version: Callable[[], tuple[int, dict[str, Monitor]]],
    templates: Templates,
    refusal: Callable[[], Exception | None],
) -> list[Started]:
    """Start the runs of ``due`` (their slots have come) in one round trip.

    Parameters:
        services: where runs are registered.
        slots: the schedule's keys.
        due: the slots to start; each is prepared (see :func:`prepare`).
        version: the catalog's current version and monitors.
        templates: to prepare runs again after an edit.
        refusal: why no monitor may run now (the source's health), or None.
    """
    reason = refusal()
    for attempt in range(STALE_RETRIES):
        current, monitors = version()
        due = [pending for pending in due if recheck(templates, pending, monitors, current)]
        launches = [_launch(pending, reason) for pending in due]
        answers = launcher(services).launch(launches, slots, expected_version=current)
        if answers != [STALE]:
            break
        log.info("the catalog changed as slots started; checking them again (%d)", attempt + 1)
    else:
        return []
    started = []
    for pending, answer in zip(due, answers, strict=True):
        if answer != 1:
            continue
        started.append(Started(pending, _after_start(services, pending, reason)))
    return started


def _launch(pending: Pending, reason: Exception | None) -> tuple[Launch, Gate]:
    if reason is None and pending.run is not None:
        return pending.run.launch, pending.gate
    return Launch(), pending.gate


def _after_start(services: Services, pending: Pending, reason: Exception | None) -> str:
    """Record what follows a won slot: skipped older slots, a run that could not start."""
    monitor = pending.monitor
    recorded = [late for late in pending.skipped if record_skipped(services, monitor, late)]
    if recorded:
        # One line per monitor, not per slot: after a day down, a 5 s monitor skips thousands.
        log.warning(skipped_line(monitor.uid, recorded))
    error = reason or pending.error
    if error is None and pending.run is not None:
        return pending.run.run_id
    name = slot_key(pending.slot)
    run_id = f"{name}-{monitor.uid}" if reason is not None else uuid.uuid4().hex
    return refuse_start(services, monitor, run_id, error or PmrunnerError("not prepared"), name)


def skipped_line(uid: str, slots: list[datetime]) -> str:
    """The log line for the slots of one monitor skipped together."""
    if len(slots) == 1:
        return f"monitor {uid}: slot {slots[0].isoformat()} skipped: {LATE_REASON}"
    first, last = min(slots), max(slots)
    return (
        f"monitor {uid}: {len(slots)} slots from {first.isoformat()} to {last.isoformat()}"
        f" skipped: {LATE_REASON}"
    )


def record_skipped(services: Services, monitor: Monitor, slot: datetime) -> bool:
    """Record that ``slot`` of ``monitor`` was skipped (once, whoever records it).

    Returns whether this call recorded it.
    """
    reason = LATE_REASON
    key = services.registry.keys.slot(monitor.uid, slot_key(slot))
    if not services.registry.redis.set(key, "skipped", nx=True, ex=SLOT_CLAIM_SECONDS):
        return False
    SLOTS_SKIPPED.inc()
    skipped = f"{services.registry.keys.prefix}monitor:{monitor.uid}:skipped"
    pipe = services.registry.redis.pipeline()
    pipe.lpush(skipped, json.dumps({"slot": slot.isoformat(), "reason": reason}))
    pipe.ltrim(skipped, 0, SKIPPED_KEPT - 1)
    pipe.execute()
    return True
