"""Client-side throttling and the parsing of a server's "wait before retrying" headers.

A :class:`Throttle` hands out call slots under one or more sliding windows
("at most 300 calls in any 60 s", "at most 10 calls in any 10 s"). Each caller
reserves its slot under a lock and then sleeps outside it, so concurrent
callers queue up in order without spinning, and a fake clock makes every wait
exact in tests.
"""

from __future__ import annotations

import datetime
import email.utils
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping

__all__ = ["SlidingWindow", "Throttle", "retry_after_seconds"]

# Values of X-RateLimit-Reset above this are Unix timestamps, below it a number
# of seconds: Postman documents epoch seconds, other gateways send a delta.
_EPOCH_THRESHOLD = 1_000_000_000.0

# Headers that say directly how many seconds to wait, in order of trust.
_DELAY_HEADERS = ("Retry-After", "RetryAfter", "X-RateLimit-RetryAfter")
_RESET_HEADERS = ("X-RateLimit-Reset", "RateLimit-Reset")


class SlidingWindow:
    """At most ``limit`` slots in any ``period`` seconds.

    Not thread-safe on its own: :class:`Throttle` serialises access.

    Args:
        limit: slots allowed per period; must be at least 1.
        period: the window length in seconds; must be positive.
    """

    def __init__(self, limit: int, period: float) -> None:
        if limit < 1:
            raise ValueError(f"rate limit must be at least 1 call, got {limit}")
        if period <= 0:
            raise ValueError(f"rate limit period must be positive, got {period}")
        self.limit = limit
        self.period = period
        # Start times of the most recent `limit` slots, never decreasing.
        self._starts: deque[float] = deque(maxlen=limit)

    def earliest(self, now: float) -> float:
        """Return the earliest time at or after ``now`` when a new slot may start."""
        if len(self._starts) < self.limit:
            return now
        # The oldest of the last `limit` slots must have left the window.
        return max(now, self._starts[0] + self.period, self._starts[-1])

    def record(self, start: float) -> None:
        """Record a slot that starts at ``start`` (not earlier than the last one)."""
        self._starts.append(start)

    def __repr__(self) -> str:
        return f"SlidingWindow(limit={self.limit}, period={self.period})"


class Throttle:
    """Reserves call slots under several sliding windows; thread-safe.

    Args:
        clock: a monotonic clock in seconds.
        sleep: how to wait; tests pass a recorder.
    """

    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._hold_until = float("-inf")

    def acquire(self, *windows: SlidingWindow) -> float:
        """Wait until a call may start under every window, and claim it.

        Args:
            windows: the windows this call counts against.

        Returns:
            The number of seconds this call waited (0.0 when it went at once).
        """
        with self._lock:
            now = self._clock()
            start = max([now, self._hold_until, *(w.earliest(now) for w in windows)])
            for window in windows:
                window.record(start)
        wait = start - now
        if wait > 0:
            self._sleep(wait)
        return max(wait, 0.0)

    def hold(self, seconds: float) -> None:
        """Make every call wait until ``seconds`` from now (the server said so).

        Args:
            seconds: how long no call may start; a shorter hold never cuts a longer one.
        """
        with self._lock:
            self._hold_until = max(self._hold_until, self._clock() + seconds)


def retry_after_seconds(headers: Mapping[str, str], now_epoch: float) -> float | None:
    """Read how long a server asked us to wait from a response's headers.

    Understands ``Retry-After`` (seconds or an HTTP date), Postman's
    ``RetryAfter`` and ``X-RateLimit-RetryAfter`` (seconds), and
    ``X-RateLimit-Reset`` / ``RateLimit-Reset`` (epoch seconds or a delta).

    Args:
        headers: the response headers; lookups must be case-insensitive
            (``requests``' header mapping is).
        now_epoch: the current wall-clock time, for dates and timestamps.

    Returns:
        Seconds to wait (never negative), or None when no header says.
    """
    for name in _DELAY_HEADERS:
        value = headers.get(name)
        if value:
            delay = _parse_delay(value, now_epoch)
            if delay is not None:
                return delay
    for name in _RESET_HEADERS:
        value = headers.get(name)
        if value:
            reset = _parse_number(value)
            if reset is not None:
                return max(0.0, reset - now_epoch if reset > _EPOCH_THRESHOLD else reset)
    return None


def _parse_delay(value: str, now_epoch: float) -> float | None:
    """Parse a delay given as seconds or as an HTTP date; None when it is neither."""
    seconds = _parse_number(value)
    if seconds is not None:
        return max(0.0, seconds)
    try:
        when = email.utils.parsedate_to_datetime(value.strip())
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:  # "-0000" means UTC with no zone given
        when = when.replace(tzinfo=datetime.UTC)
    return max(0.0, when.timestamp() - now_epoch)


def _parse_number(value: str) -> float | None:
    """Parse a finite decimal number; None for anything else."""
    try:
        number = float(value.strip())
    except ValueError:
        return None
    if number != number or number in (float("inf"), float("-inf")):  # NaN or infinite
        return None
    return number
