"""When a monitor runs: a cron expression in a time zone, or a fixed interval.

A :class:`Schedule` is one of two kinds:

``cron`` + ``timezone``
    Postman's 5-field cron (``minute hour day-of-month month day-of-week``) or
    the 6-field form with seconds first (``second minute hour ...``), read in
    an IANA time zone (``Europe/Berlin``; default ``UTC``). Names (``MON``,
    ``JAN``), ranges, lists, steps, ``L``, ``W``, ``#`` and the aliases
    ``@hourly``, ``@daily``, ``@weekly``, ``@monthly``, ``@yearly`` are
    accepted. Hashed and random values (``H``, ``R``) are refused: every host
    must compute the same slots. When day-of-month and day-of-week are both
    restricted, a day matching either runs, as in cron.

``every_seconds``
    A fixed interval, anchored to the Unix epoch: the slots are the multiples
    of the interval since 1970-01-01T00:00:00Z, so every host (and every
    restart) computes the same slots, whatever the time zone.

Daylight-saving changes follow Vixie cron's rule:

- *Fixed-time* schedules (second, minute and hour fields that do not start
  with ``*``, such as ``30 2 * * *``) run once per matching wall-clock time.
  A time skipped by a spring-forward change runs once, at the first instant
  after the gap (02:30 on the night Berlin jumps from 02:00 to 03:00 runs at
  03:00 CEST); several skipped times of the same gap run once together. A
  time that occurs twice in a fall-back change runs once, at its first
  occurrence.
- *Frequent* schedules (a second, minute or hour field starting with ``*``,
  such as ``*/5 * * * *`` or ``0 * * * *``) follow real time through both
  changes: no run is added for the skipped hour, and the repeated hour is
  covered by runs in both of its passes, so an every-5-minutes monitor keeps
  running every 5 minutes and an hourly one every hour. As in cron, a
  schedule such as ``*/20 2 * * *`` therefore has no run on the night its
  hour is skipped.

All instants are timezone-aware ``datetime`` objects in UTC; naive datetimes
are refused.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import CroniterBadDateError, CroniterError, croniter

from pmrunner.errors import ConfigurationError

__all__ = ["DEFAULT_SLOT_LIMIT", "Schedule", "load_timezone", "parse_interval"]

# slots_between returns at most this many slots (the latest ones) by default.
DEFAULT_SLOT_LIMIT = 1000

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_DAY = timedelta(days=1)
_ONE_SECOND = timedelta(seconds=1)
_TINY = timedelta(microseconds=1)

# A bound on the wall-clock times looked at to find one slot. The longest walk
# is a per-second schedule through a repeated hour (7,200 steps); this is far
# above it, and only there so a broken time zone cannot keep us looping.
_MAX_STEPS = 100_000

_ALIASES = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}

# croniter's hashed ("H") and random ("R") values differ per host or per parse.
_HASHED_OR_RANDOM = re.compile(r"^[HR](\(\d+-\d+\))?(/\d+)?$", re.IGNORECASE)

_INTERVAL = re.compile(r"^\s*(\d+)\s*(s|sec|m|min|h|d)?\s*$", re.IGNORECASE)
_UNIT_SECONDS = {"": 1, "s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "d": 86400}


def load_timezone(name: str) -> ZoneInfo:
    """The IANA time zone called ``name``.

    Raises:
        ConfigurationError: ``time zone 'Europe/Berlinn' is not a known IANA time zone``.
    """
    if not isinstance(name, str) or not name.strip():
        raise ConfigurationError(f"time zone must be a non-empty string, got {name!r}")
    try:
        return ZoneInfo(name.strip())
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigurationError(f"time zone {name!r} is not a known IANA time zone") from None


def parse_interval(value: Any) -> int:
    """Seconds from an interval: ``300``, ``"300"``, ``"60s"``, ``"5m"``, ``"1h"`` or ``"1d"``.

    Raises:
        ConfigurationError: not a positive whole number of seconds, minutes,
            hours or days.
    """
    if isinstance(value, bool):
        raise ConfigurationError(f"interval must be a number or text like '5m', got {value!r}")
    if isinstance(value, int):
        seconds = value
    else:
        match = _INTERVAL.match(value) if isinstance(value, str) else None
        if match is None:
            raise ConfigurationError(
                f"interval {value!r} is not a number of seconds or text like '60s', '5m', '1h'"
            )
        seconds = int(match.group(1)) * _UNIT_SECONDS[(match.group(2) or "").lower()]
    if seconds < 1:
        raise ConfigurationError(f"interval {value!r} must be at least one second")
    return seconds


@dataclass(frozen=True)
class _CronPlan:
    """A validated cron expression, in croniter's seconds-first form."""

    expression: str
    frequent: bool  # Vixie cron's "wildcard" job: follows real time through DST changes


@functools.lru_cache(maxsize=1024)
def _plan_cron(expression: str) -> _CronPlan:
    """Validate a 5- or 6-field cron expression; name it in every error."""
    text = _ALIASES.get(expression.lower(), expression)
    fields = text.split()
    if len(fields) not in (5, 6):
        raise ConfigurationError(
            f"cron expression {expression!r} has {len(fields)} fields; expected 5 "
            "(minute hour day month weekday) or 6 (second first)"
        )
    for token in ",".join(fields).split(","):
        if _HASHED_OR_RANDOM.match(token):
            raise ConfigurationError(
                f"cron expression {expression!r}: hashed and random values ({token!r}) "
                "are not supported; every host must compute the same times"
            )
    if len(fields) == 5:
        fields = ["0", *fields]
    six_fields = " ".join(fields)
    try:
        # One step from a fixed date: croniter reports impossible dates only then.
        croniter(six_fields, datetime(2000, 1, 1), second_at_beginning=True).get_next(datetime)
    except CroniterBadDateError:
        raise ConfigurationError(
            f"cron expression {expression!r} never matches a date (such as 30 February)"
        ) from None
    except (CroniterError, ValueError, KeyError, IndexError) as exc:
        raise ConfigurationError(f"cron expression {expression!r} is not valid: {exc}") from None
    frequent = any(field.startswith("*") for field in fields[:3])
    return _CronPlan(six_fields, frequent)


@dataclass(frozen=True)
class Schedule:
    """A cron expression in a time zone, or an interval in seconds (exactly one of them).

    Args:
        cron: a 5-field or 6-field (seconds first) cron expression; whitespace
            is normalised.
        timezone: the IANA time zone the cron expression is read in (default
            ``UTC``); kept as ``UTC`` for intervals.
        every_seconds: the interval, at least 1; slots are anchored to the epoch.

    Raises:
        ConfigurationError: neither or both kinds given, an invalid cron
            expression (named in the message), an unknown time zone or an
            interval below one second.
    """

    cron: str | None = None
    timezone: str = "UTC"
    every_seconds: int | None = None

    def __post_init__(self) -> None:
        if (self.cron is None) == (self.every_seconds is None):
            raise ConfigurationError("a schedule needs either a cron expression or an interval")
        if self.cron is not None:
            if not isinstance(self.cron, str) or not self.cron.strip():
                raise ConfigurationError(
                    f"cron expression must be non-empty text, not {self.cron!r}"
                )
            object.__setattr__(self, "cron", " ".join(self.cron.split()))
            _plan_cron(self.cron)
            load_timezone(self.timezone)
            object.__setattr__(self, "timezone", self.timezone.strip())
        else:
            object.__setattr__(self, "every_seconds", parse_interval(self.every_seconds))
            object.__setattr__(self, "timezone", "UTC")

    # -- construction and serialisation -------------------------------------------------

    @classmethod
    def from_cron(cls, expression: str, timezone: str = "UTC") -> Schedule:
        """A cron schedule read in ``timezone``."""
        return cls(cron=expression, timezone=timezone)

    @classmethod
    def every(cls, interval: int | str) -> Schedule:
        """An epoch-anchored interval: ``300``, ``"5m"``, ``"1h"`` (see :func:`parse_interval`)."""
        return cls(every_seconds=parse_interval(interval))

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form: ``{"cron", "timezone"}`` or ``{"every_seconds"}``."""
        if self.cron is not None:
            return {"cron": self.cron, "timezone": self.timezone}
        return {"every_seconds": self.every_seconds}

    @classmethod
    def from_dict(cls, data: Any) -> Schedule:
        """The inverse of :meth:`to_dict`.

        Raises:
            ConfigurationError: not a mapping with ``cron`` or ``every_seconds``.
        """
        if not isinstance(data, dict):
            raise ConfigurationError(f"schedule must be an object, got {data!r}")
        if "every_seconds" in data:
            return cls(every_seconds=data["every_seconds"])
        return cls(cron=data.get("cron"), timezone=data.get("timezone") or "UTC")

    def describe(self) -> str:
        """A short human-readable form, for logs: ``cron '*/5 * * * *' (Europe/Berlin)``."""
        if self.cron is not None:
            return f"cron {self.cron!r} ({self.timezone})"
        return f"every {self.every_seconds}s"

    # -- slots ------------------------------------------------------------------------

    def next_slot(self, after: datetime) -> datetime:
        """The first slot strictly after ``after`` (an aware datetime), in UTC."""
        after = _as_utc(after, "after")
        if self.every_seconds is not None:
            return _EPOCH + (_interval_index(after, self.every_seconds) + 1) * timedelta(
                seconds=self.every_seconds
            )
        return self._cron_next(after)

    def previous_slot(self, at: datetime) -> datetime | None:
        """The last slot at or before ``at`` (an aware datetime), in UTC.

        Returns None when there is none (before the epoch for intervals, more
        than 50 years back for cron).
        """
        at = _as_utc(at, "at")
        if self.every_seconds is not None:
            index = _interval_index(at, self.every_seconds)
            return _EPOCH + index * timedelta(seconds=self.every_seconds) if index >= 0 else None
        return self._cron_previous(at)

    def slots_between(
        self, after: datetime, until: datetime, *, limit: int = DEFAULT_SLOT_LIMIT
    ) -> list[datetime]:
        """The slots strictly after ``after`` up to and including ``until``, oldest first.

        Args:
            after: an aware datetime; a slot equal to it is not included.
            until: an aware datetime; a slot equal to it is included.
            limit: at most this many slots are returned, the latest ones, so a
                long gap (a scheduler that was down) cannot flood the caller.
        """
        after, until = _as_utc(after, "after"), _as_utc(until, "until")
        if until <= after or limit < 1:
            return []
        if self.every_seconds is not None:
            return _interval_slots(after, until, self.every_seconds, limit)
        slots: list[datetime] = []
        slot = self._cron_previous(until)
        while slot is not None and slot > after and len(slots) < limit:
            slots.append(slot)
            slot = self._cron_previous(slot - _TINY)
        slots.reverse()
        return slots

    # -- cron in a time zone ---------------------------------------------------------------

    def _cron_next(self, after: datetime) -> datetime:
        """Walk wall-clock matches forward until no later one can come sooner."""
        assert self.cron is not None
        plan, zone = _plan_cron(self.cron), load_timezone(self.timezone)
        # The earliest wall-clock time whose instant can follow ``after``: with
        # the smallest offset in force around it (a fall-back repeats times).
        offset = min(_offset(after, zone), _offset(after + _ONE_DAY, zone))
        start = after.replace(tzinfo=None) + offset - _ONE_SECOND
        walls = croniter(plan.expression, start, second_at_beginning=True)
        best: datetime | None = None
        try:
            for _ in range(_MAX_STEPS):
                instants, earliest, _latest = _instants(walls.get_next(datetime), zone, plan)
                for instant in instants:
                    if instant > after and (best is None or instant < best):
                        best = instant
                # Later wall-clock times never map before ``earliest``.
                if best is not None and earliest >= best:
                    return best
        except CroniterBadDateError:
            pass
        raise ConfigurationError(f"cron expression {self.cron!r}: no time found after {after}")

    def _cron_previous(self, at: datetime) -> datetime | None:
        """Walk wall-clock matches backward until no earlier one can come later."""
        assert self.cron is not None
        plan, zone = _plan_cron(self.cron), load_timezone(self.timezone)
        offset = max(_offset(at, zone), _offset(at - _ONE_DAY, zone))
        start = at.replace(tzinfo=None) + offset + _ONE_SECOND
        walls = croniter(plan.expression, start, second_at_beginning=True)
        best: datetime | None = None
        try:
            for _ in range(_MAX_STEPS):
                instants, _earliest, latest = _instants(walls.get_prev(datetime), zone, plan)
                for instant in instants:
                    if instant <= at and (best is None or instant > best):
                        best = instant
                # Earlier wall-clock times never map after ``latest``.
                if best is not None and latest <= best:
                    return best
        except CroniterBadDateError:
            return best
        return best


def _as_utc(moment: datetime, name: str) -> datetime:
    if not isinstance(moment, datetime) or moment.utcoffset() is None:
        raise ValueError(f"{name} must be a timezone-aware datetime, got {moment!r}")
    return moment.astimezone(UTC)


def _offset(moment: datetime, zone: ZoneInfo) -> timedelta:
    return moment.astimezone(zone).utcoffset() or timedelta(0)


def _instants(
    wall: datetime, zone: ZoneInfo, plan: _CronPlan
) -> tuple[list[datetime], datetime, datetime]:
    """The UTC instants a matching wall-clock time runs at, and bounds for the walk.

    Returns:
        ``(instants, earliest, latest)``: the runs (none, one or two), and the
        earliest and latest instant the wall-clock time can stand for. Both
        bounds grow with the wall-clock time, which lets the walks stop.
    """
    first = wall.replace(tzinfo=zone, fold=0).astimezone(UTC)
    second = wall.replace(tzinfo=zone, fold=1).astimezone(UTC)
    if first == second:
        return [first], first, first
    if first < second:  # repeated by a fall-back change: fold=0 is the first pass
        return ([first, second] if plan.frequent else [first]), first, second
    # Skipped by a spring-forward change: PEP 495 maps fold=0 past the gap.
    gap_end = _gap_end(second, first, zone)
    return ([] if plan.frequent else [gap_end]), gap_end, gap_end


def _gap_end(before: datetime, after: datetime, zone: ZoneInfo) -> datetime:
    """The instant a spring-forward change takes effect, between two UTC instants.

    A binary search over whole seconds (offsets change on whole seconds).
    """
    old_offset = _offset(before, zone)
    low, high = int(before.timestamp()), int(after.timestamp())
    while high - low > 1:
        middle = (low + high) // 2
        if _offset(datetime.fromtimestamp(middle, UTC), zone) == old_offset:
            low = middle
        else:
            high = middle
    return datetime.fromtimestamp(high, UTC)


def _interval_index(moment: datetime, every_seconds: int) -> int:
    """How many whole intervals lie between the epoch and ``moment`` (floored)."""
    return (moment - _EPOCH) // timedelta(seconds=every_seconds)


def _interval_slots(
    after: datetime, until: datetime, every_seconds: int, limit: int
) -> list[datetime]:
    first = _interval_index(after, every_seconds) + 1
    last = _interval_index(until, every_seconds)
    first = max(first, last - limit + 1)
    step = timedelta(seconds=every_seconds)
    return [_EPOCH + index * step for index in range(first, last + 1)]
