"""The cluster's one poller: reads the monitor source into the catalog, on its own clock.

Every scheduler process (``celery -A worker beat``, ``pmrunner runner start``,
``pmrunner up``) runs a :class:`Poller` thread, but only the holder of the
lease ``poll:lease`` in Redis polls: two beats or two runners never poll
together, and when the holder dies another takes over once the lease
expires. The holder polls every ``interval`` seconds; after a failed poll
it tries again within :data:`RETRY_AFTER_FAILURE` seconds, and after a
refused key or a spent monthly budget it waits ``permanent_backoff``
seconds instead.

A good poll is committed to the :class:`~scheduler.catalog.Catalog`; a
failed one only records its error (the catalog keeps serving the last good
poll). The logs say what happened once per change of state, not per poll.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Protocol

import redis

from scheduler.catalog import Catalog, Changes
from scheduler.health import record_poll
from scheduler.monitors import Monitor
from scheduler.snapshot import Snapshot

__all__ = ["Lease", "PolledSource", "Poller"]

log = logging.getLogger("pmrunner.scheduler")

# Seconds to the next poll after a transient failure: one listing call, so
# recovery is noticed soon after the source is back.
RETRY_AFTER_FAILURE = 5.0

# Renew the lease only while we hold it; release it only if it is ours.
_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) and 1 or 0
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class PolledSource(Protocol):
    """What the poller needs of a monitor source."""

    @property
    def healthy(self) -> bool: ...

    @property
    def last_error(self) -> str | None: ...

    def refresh(self) -> None: ...

    def monitors(self) -> list[Monitor]: ...


class Lease:
    """A lease in Redis held by one process at a time; renewed by its holder.

    Args:
        client: the Redis client.
        key: the lease's key.
        ttl: seconds the lease outlives its last renewal.
    """

    def __init__(self, client: redis.Redis, key: str, ttl: float) -> None:
        self.key = key
        self.ttl_ms = round(ttl * 1000)
        self.token = uuid.uuid4().hex
        self._renew = client.register_script(_RENEW)
        self._release = client.register_script(_RELEASE)

    def hold(self) -> bool:
        """Take or renew the lease; whether this process holds it now."""
        return bool(self._renew(keys=[self.key], args=[self.token, self.ttl_ms]))

    def release(self) -> None:
        self._release(keys=[self.key], args=[self.token])


class Poller:
    """Polls ``source`` into ``catalog`` while holding ``lease``.

    Args:
        source: the monitor source (Postman's or local files).
        catalog: where good polls go.
        lease: the cluster's poll lease.
        interval: seconds between polls.
        permanent_backoff: seconds between polls after a permanent error.
        snapshot: how to read the source's full state after a good poll.
        restore: how to start the source from the stored catalog.
        clock: the Unix time.
    """

    def __init__(
        self,
        source: PolledSource,
        catalog: Catalog,
        lease: Lease,
        *,
        interval: float,
        permanent_backoff: float,
        snapshot: Callable[[], Snapshot],
        restore: Callable[[Snapshot], None] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.source = source
        self.catalog = catalog
        self.lease = lease
        self.interval = interval
        self.permanent_backoff = permanent_backoff
        self._snapshot = snapshot
        self._restore = restore
        self._clock = clock
        self._next_poll = 0.0
        self._restored = False
        self._logged: tuple[str, str | None] = ("", None)

    def poll_once(self) -> bool:
        """Poll now and record the outcome; whether the poll was good."""
        if not self._restored and self._restore is not None:
            self._restore(self.catalog.load())
            self._restored = True
        self.source.refresh()
        now = self._clock()
        permanent = bool(getattr(self.source, "permanent", False))
        if not self.source.healthy:
            record_poll(
                self.catalog.redis,
                self.catalog.prefix,
                now,
                error=self.source.last_error,
                permanent=permanent,
            )
            self._log_failure(self.source.last_error or "unknown error", permanent)
            return False
        snapshot = self._snapshot()
        changes = self.catalog.commit(snapshot, datetime.fromtimestamp(now, UTC))
        active = sum(1 for monitor in snapshot.monitors.values() if monitor.active)
        record_poll(self.catalog.redis, self.catalog.prefix, now, error=None, monitors=active)
        self._log_success(changes, active)
        return True

    def step(self) -> float:
        """Hold the lease and poll when it is time; seconds until the next step."""
        if not self.lease.hold():
            return 1.0
        now = self._clock()
        if now >= self._next_poll:
            good = self.poll_once()
            permanent = not good and bool(getattr(self.source, "permanent", False))
            if good:
                self._next_poll = now + self.interval
            elif permanent:
                self._next_poll = now + self.permanent_backoff
            else:
                self._next_poll = now + min(self.interval, RETRY_AFTER_FAILURE)
        return max(0.2, min(1.0, self._next_poll - self._clock()))

    def run(self, stop: threading.Event) -> None:
        """Step until ``stop`` is set; errors of one step are logged, never fatal.

        A second thread renews the lease while a long poll (waiting on the
        rate budget) is under way.
        """
        keeper = threading.Thread(
            target=self._keep_lease, args=(stop,), name="pmrunner-poll-lease", daemon=True
        )
        keeper.start()
        try:
            while not stop.is_set():
                try:
                    wait = self.step()
                except (redis.RedisError, OSError) as error:
                    log.warning("monitor poll: Redis failed: %s; trying again", error)
                    wait = 1.0
                stop.wait(wait)
        finally:
            with contextlib.suppress(redis.RedisError):
                self.lease.release()

    def _keep_lease(self, stop: threading.Event) -> None:
        while not stop.wait(self.lease.ttl_ms / 3000):
            with contextlib.suppress(redis.RedisError, OSError):
                self.lease.hold()

    def _log_failure(self, error: str, permanent: bool) -> None:
        kind = "permanent" if permanent else "transient"
        if self._logged == (kind, _first_words(error)):
            return
        self._logged = (kind, _first_words(error))
        known = len(self.catalog.monitors())
        if permanent:
            log.error(
                "monitor source refused: %s; polling again in %.0f s (%s)",
                error,
                self.permanent_backoff,
                _keeps_running(known),
            )
        else:
            log.warning("monitor source poll failed: %s; %s", error, _keeps_running(known))

    def _log_success(self, changes: Changes, active: int) -> None:
        if self._logged[0] != "good":
            log.info("monitor source polled: %d active monitors", active)
        self._logged = ("good", None)
        if changes.added or changes.edited or changes.paused or changes.removed:
            log.info(
                "monitors: %d added, %d edited, %d paused, %d removed",
                len(changes.added),
                len(changes.edited),
                len(changes.paused),
                len(changes.removed),
            )


def _keeps_running(known: int) -> str:
    if known == 0:
        return "no monitors are known yet, so none runs until a poll succeeds"
    return f"the {known} monitors of the last good poll keep running"


def _first_words(error: str) -> str:
    """An error's kind for "log once per change": its text before any detail."""
    return error.split(":", 2)[0] if error else ""
