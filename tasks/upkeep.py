"""Upkeep in every pmrunner process: sweep overdue runs, resolve lost workers, deliver webhooks.

Workers, the scheduler (beat) and the API each start an upkeep thread; a
lease in Redis lets exactly one of them work at a time, and another takes
over within seconds when that process dies. So runs are reported, lost
workers' steps resolved and webhooks delivered as long as any pmrunner
process is alive, even one with no worker beside it.

Lost workers are judged only on a Redis that has been up, and reachable
from here, for a whole lapse: after an outage, live workers get the time
to heartbeat again before anyone takes them for lost.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from typing import Any

import redis
from celery import Celery, signals

from tasks.context import Services
from tasks.liveness import resolve_lost, resolve_orphans
from tasks.outbox import Outbox
from tasks.report_order import ReportPromoter
from tasks.sweep import sweep
from tasks.transit import TransitWatch

log = logging.getLogger(__name__)
LEASE_MIN_SECONDS = 5.0

# KEYS: lease. ARGV: holder, milliseconds. Take the lease, or keep it.
_HOLD = """
local holder = redis.call('GET', KEYS[1])
if holder == ARGV[1] or (not holder and redis.call('SET', KEYS[1], ARGV[1], 'NX')) then
    redis.call('PEXPIRE', KEYS[1], ARGV[2])
    return 1
end
return 0
"""


class Upkeep:
    """The upkeep thread of one process.

    Parameters:
        services: Redis-backed services of the process's app.
    """

    def __init__(self, services: Services) -> None:
        self.services = services
        self.holder = uuid.uuid4().hex
        self._stop = threading.Event()
        self._hold = services.registry.redis.register_script(_HOLD)
        self._outbox = Outbox(services)
        self._promoter = ReportPromoter(services)
        self._transit = TransitWatch(services)
        self._trusted_from = time.monotonic() + services.settings.worker_lapse
        self._failing = False
        self._thread = threading.Thread(target=self._loop, name="pmrunner-upkeep", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Stop, and hand the lease on at once."""
        self._stop.set()
        self._outbox.close()
        try:
            client = self.services.registry.redis
            lease = self.services.registry.keys.upkeep_lease()
            if client.get(lease) == self.holder.encode():
                client.delete(lease)
        except redis.RedisError:
            pass

    def run_once(self) -> bool:
        """One round, if this process holds the lease; whether it did."""
        settings = self.services.settings
        lease_ms = int(max(settings.sweep_interval * 3, LEASE_MIN_SECONDS) * 1000)
        keys = [self.services.registry.keys.upkeep_lease()]
        if not self._hold(keys=keys, args=[self.holder, lease_ms]):
            return False
        self._promoter.run_once()  # first: it is one short script
        sweep(self.services)
        if self._may_judge_workers():
            for worker in self.services.workers.lapsed():
                resolve_lost(self.services, worker)
                self._transit.alert()  # it may have taken a message it never filed
            resolve_orphans(self.services)
            self._transit.run_once()
        self._outbox.deliver_due()
        return True

    def _may_judge_workers(self) -> bool:
        """Whether heartbeats can be trusted: Redis, and our view of it, up for a lapse."""
        if time.monotonic() < self._trusted_from:
            return False
        return self.services.workers.server_uptime() >= self.services.settings.worker_lapse

    def _loop(self) -> None:
        lapse = self.services.settings.worker_lapse
        while not self._stop.wait(self.services.settings.sweep_interval):
            started = time.monotonic()
            try:
                self.run_once()
            except redis.RedisError as error:
                self._trusted_from = time.monotonic() + lapse
                self._transit.alert()  # a reply may have been lost with a connection
                if not self._failing:
                    log.warning("upkeep: Redis unreachable (%s); retrying", error)
                self._failing = True
                continue
            except Exception:
                log.exception("upkeep round failed; the next one tries again")
            if time.monotonic() - started > LEASE_MIN_SECONDS:
                # A round that long waited on Redis (its client rides out outages):
                # heartbeats missed meanwhile prove nothing yet.
                self._trusted_from = time.monotonic() + lapse
                self._transit.alert()
            if self._failing:
                log.warning("upkeep: Redis reachable again")
                self._failing = False


_running: dict[int, Upkeep] = {}
_running_lock = threading.Lock()


def start_upkeep(app: Celery) -> Upkeep:
    """Start the process's upkeep thread for ``app`` (once per app)."""
    with _running_lock:
        upkeep = _running.get(id(app))
        if upkeep is None:
            upkeep = _running[id(app)] = Upkeep(Services.of(app))
            upkeep.start()
        return upkeep


def stop_upkeep(app: Celery) -> None:
    with _running_lock:
        upkeep = _running.pop(id(app), None)
    if upkeep is not None:
        upkeep.stop()


def _pmrunner_app(sender: Any) -> Celery | None:
    app = getattr(sender, "app", None)
    return app if getattr(app, "main", None) == "pmrunner" else None


@signals.worker_init.connect
def _worker_started(sender: Any = None, **_: Any) -> None:
    app = _pmrunner_app(sender)
    if app is not None:
        start_upkeep(app)


@signals.worker_shutdown.connect
def _worker_stopped(sender: Any = None, **_: Any) -> None:
    app = _pmrunner_app(sender)
    if app is not None:
        stop_upkeep(app)


@signals.beat_init.connect
def _beat_started(sender: Any = None, **_: Any) -> None:
    app = _pmrunner_app(sender)
    if app is not None:
        start_upkeep(app)
