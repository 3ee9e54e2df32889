"""How the monitor source is doing, as every process sees it: one record in Redis.

The poller writes the outcome of each poll into the hash ``source:state``;
``/health``, ``/metrics`` and the tick read it, so they always agree. States:

- ``healthy``: the last poll succeeded, and polls keep coming;
- ``degraded``: polls fail for a reason that passes (Postman down, hanging,
  answering garbage, rate limiting) or stopped coming; monitors run from the
  last good poll, ``lastGoodPollAgeSeconds`` old;
- ``unhealthy``: Postman refused the key or the monthly budget is spent, no
  poll ever succeeded, or the last good poll is older than the maximum
  staleness (monitors do not start then);
- ``starting``: a source is configured and no poll has finished yet;
- ``none``: no monitor source is configured.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import redis
from prometheus_client.core import GaugeMetricFamily

from pmrunner.scraped import ScrapedCollector, register_scraped

__all__ = [
    "STATES",
    "SourceHealth",
    "SourceHealthCollector",
    "read_health",
    "record_poll",
    "register_source_metrics",
]

STATES = ("healthy", "degraded", "unhealthy", "starting", "none")

# Polls are overdue (the poller is gone or stuck) after this many intervals.
_OVERDUE_INTERVALS = 3


@dataclass(frozen=True)
class SourceHealth:
    """The monitor source's state at one moment.

    Parameters:
        state: one of :data:`STATES`.
        reason: why it is not healthy, in one line (None when healthy).
        last_good_poll: Unix time of the last good poll, None when there was none.
        age: seconds since the last good poll, None when there was none.
        monitors: active monitors in the catalog at the last good poll.
    """

    state: str
    reason: str | None = None
    last_good_poll: float | None = None
    age: float | None = None
    monitors: int = 0

    @property
    def runs_monitors(self) -> bool:
        """Whether monitors may start from the catalog now (not too stale)."""
        return self.last_good_poll is not None and not self.stale

    @property
    def stale(self) -> bool:
        return self.state == "unhealthy" and (self.reason or "").startswith("stale:")

    def to_dict(self) -> dict[str, object]:
        """The ``monitorSourceDetail`` object of ``/health``."""
        return {
            "state": self.state,
            "reason": self.reason,
            "lastGoodPollAgeSeconds": None if self.age is None else round(self.age, 1),
            "monitors": self.monitors,
        }


def state_key(prefix: str) -> str:
    return f"{prefix}source:state"


def record_poll(
    client: redis.Redis,
    prefix: str,
    now: float,
    *,
    error: str | None,
    permanent: bool = False,
    monitors: int | None = None,
) -> None:
    """Record the outcome of one poll (``error`` None for a good one)."""
    fields: dict[Any, Any] = {
        "lastPoll": repr(now),
        "error": error or "",
        "permanent": "",
    }
    if error is None:
        fields["lastGoodPoll"] = repr(now)
    elif permanent:
        fields["permanent"] = "1"
    if monitors is not None:
        fields["monitors"] = str(monitors)
    client.hset(state_key(prefix), mapping=fields)


def read_health(
    client: redis.Redis, prefix: str, now: float, *, poll_interval: float, max_staleness: float
) -> SourceHealth:
    """The source's state at ``now`` from the poller's record."""
    raw = {_text(k): _text(v) for k, v in client.hgetall(state_key(prefix)).items()}
    return health_of(raw, now, poll_interval=poll_interval, max_staleness=max_staleness)


def health_of(
    record: dict[str, str], now: float, *, poll_interval: float, max_staleness: float
) -> SourceHealth:
    """Decide the state from a ``source:state`` record (see the module documentation)."""
    if not record.get("lastPoll"):
        return SourceHealth("starting", "no poll of the monitor source has finished yet")
    good = float(record["lastGoodPoll"]) if record.get("lastGoodPoll") else None
    age = None if good is None else max(0.0, now - good)
    monitors = int(record.get("monitors") or 0)
    error = record.get("error") or None
    if good is None or age is None:
        return SourceHealth("unhealthy", f"no good poll yet: {error}", None, None, 0)
    if age > max_staleness:
        reason = f"stale: the last good poll is {age:.0f} s old (PMRUNNER_MAX_STALENESS)"
        return SourceHealth("unhealthy", reason, good, age, monitors)
    if error and record.get("permanent"):
        return SourceHealth("unhealthy", error, good, age, monitors)
    if error:
        return SourceHealth("degraded", error, good, age, monitors)
    overdue = now - float(record["lastPoll"])
    if overdue > _OVERDUE_INTERVALS * poll_interval:
        reason = f"no poll for {overdue:.0f} s: is a scheduler (celery beat, runner) running?"
        return SourceHealth("degraded", reason, good, age, monitors)
    return SourceHealth("healthy", None, good, age, monitors)


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class SourceHealthCollector(ScrapedCollector[SourceHealth | None]):
    """Prometheus metrics of the source's state, read when scraped, so they agree with /health.

    - ``pmrunner_monitor_source_healthy``: 1 while the state is ``healthy``;
    - ``pmrunner_monitor_source_state{state}``: 1 for the current state, 0 for the others;
    - ``pmrunner_monitor_source_last_good_poll_age_seconds``: NaN before any good poll.

    Args:
        lookup: the current health, or None when no source is configured.
    """

    def families(self, found: SourceHealth | None) -> Iterator[GaugeMetricFamily]:
        health = found or SourceHealth("none")
        yield GaugeMetricFamily(
            "pmrunner_monitor_source_healthy",
            "1 while the monitor source is healthy (as /health says)",
            value=1 if health.state == "healthy" else 0,
        )
        states = GaugeMetricFamily(
            "pmrunner_monitor_source_state",
            "1 for the monitor source's current state (as /health says)",
            labels=["state"],
        )
        for state in STATES:
            states.add_metric([state], 1 if state == health.state else 0)
        yield states
        yield GaugeMetricFamily(
            "pmrunner_monitor_source_last_good_poll_age_seconds",
            "Seconds since the last good poll of the monitor source",
            value=math.nan if health.age is None else health.age,
        )


def register_source_metrics(lookup: Callable[[], SourceHealth | None]) -> None:
    """Serve the source's state in this process's metrics (the latest ``lookup`` wins)."""
    register_scraped(SourceHealthCollector, lookup)
