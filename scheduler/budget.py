"""The rate budget every call to the Postman API draws from.

Postman limits each API key to 300 calls a minute, and calls to monitor
endpoints to 10 in any 10 s. A :class:`Budget` hands out call slots below
those limits and holds every call when the server asks for a pause
(``Retry-After``, ``X-RateLimit-Remaining: 0``).

- :class:`LocalBudget` counts the calls of one process (``pmrunner run``
  fetching a collection by uid needs nothing more).
- :class:`RedisBudget` counts the calls of every process that uses the same
  key against the same API: schedulers, the HTTP API and workers share one
  budget, and a pause one of them is told about holds all of them. It is a
  token bucket kept in Redis (GCRA: one timestamp per bucket, updated by a
  script, on Redis' clock), so a slot is reserved atomically and callers
  queue in order without spinning.

The defaults stay below Postman's limits with a margin: monitor endpoints
0.8 calls a second with no burst (at most 9 in any 10 s), every endpoint
4 calls a second with a burst of 10 (at most 250 a minute).
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Mapping
from typing import Protocol

import redis

from scheduler.ratelimit import SlidingWindow, Throttle, retry_after_seconds

__all__ = [
    "MONITOR_CALLS_PER_SECOND",
    "Budget",
    "BudgetExceeded",
    "LocalBudget",
    "RedisBudget",
    "is_monitor_path",
    "pause_from_headers",
]

log = logging.getLogger("pmrunner.postman")

# Sustained rates of the shared budget (calls per second) and the bursts above them.
MONITOR_CALLS_PER_SECOND = 0.8
MONITOR_BURST = 1
ALL_CALLS_PER_SECOND = 4.0
ALL_BURST = 10


class BudgetExceeded(Exception):
    """The next slot is further away than the caller is willing to wait.

    Parameters:
        wait: seconds until the next slot.
        reason: why the budget is paused, when a pause is the cause.
    """

    def __init__(self, wait: float, reason: str | None) -> None:
        super().__init__(f"the Postman API budget has no slot for {wait:.0f} s")
        self.wait = wait
        self.reason = reason


class Budget(Protocol):
    """Call slots under Postman's limits; see the module documentation."""

    def acquire(self, path: str, max_wait: float) -> float:
        """Wait for a slot for a call to ``path``; return the seconds waited.

        Raises:
            BudgetExceeded: the slot is more than ``max_wait`` seconds away
                (nothing is reserved then).
        """
        ...

    def pause(self, seconds: float, reason: str) -> None:
        """Hold every call for ``seconds`` (a longer pause already set stays)."""
        ...


def is_monitor_path(path: str) -> bool:
    """Whether ``path`` counts against the monitor endpoints' limit."""
    return path == "/monitors" or path.startswith("/monitors/")


def pause_from_headers(headers: Mapping[str, str], now_epoch: float) -> float | None:
    """Seconds to hold all calls according to a successful answer's headers.

    ``X-RateLimit-Remaining: 0`` with a reset time means the window is spent.
    """
    remaining = headers.get("X-RateLimit-Remaining") or headers.get("RateLimit-Remaining")
    if remaining is None or remaining.strip() != "0":
        return None
    return retry_after_seconds(headers, now_epoch)


class LocalBudget:
    """The budget of one process: sliding windows under a lock.

    Args:
        requests_per_minute: calls allowed over all endpoints in any 60 s.
        monitor_calls_per_10s: calls allowed to monitor endpoints in any 10 s.
        clock: a monotonic clock.
        sleep: how to wait.
    """

    def __init__(
        self,
        requests_per_minute: int = 300,
        monitor_calls_per_10s: int = 10,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._throttle = Throttle(clock=clock, sleep=sleep)
        self._all_calls = SlidingWindow(requests_per_minute, 60.0)
        self._monitor_calls = SlidingWindow(monitor_calls_per_10s, 10.0)

    def acquire(self, path: str, max_wait: float) -> float:
        windows = [self._all_calls]
        if is_monitor_path(path):
            windows.append(self._monitor_calls)
        return self._throttle.acquire(*windows)

    def pause(self, seconds: float, reason: str) -> None:
        self._throttle.hold(seconds)


# Reserve one slot under every bucket, after any pause, on Redis' clock.
# KEYS: pause-until, pause-reason, bucket...   ARGV: max_wait_ms, (interval_ms, burst_ms)...
# Returns {wait_ms, reason}; wait_ms < 0 means "not reserved: -wait_ms away".
_ACQUIRE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local start = now
local paused = tonumber(redis.call('GET', KEYS[1]) or '0')
if paused > start then start = paused end
local tats = {}
for i = 3, #KEYS do
  local burst = tonumber(ARGV[(i - 3) * 2 + 3])
  local tat = math.max(tonumber(redis.call('GET', KEYS[i]) or '0'), now)
  tats[i] = tat
  if tat - burst > start then start = tat - burst end
end
local wait = start - now
local reason = false
if paused > now then reason = redis.call('GET', KEYS[2]) end
if wait > tonumber(ARGV[1]) then return {-wait, reason} end
for i = 3, #KEYS do
  local interval = tonumber(ARGV[(i - 3) * 2 + 2])
  local tat = math.max(tats[i], start) + interval
  redis.call('SET', KEYS[i], tat, 'PX', tat - now + 60000)
end
return {wait, reason}
"""

# Hold every call until now + ARGV[1] ms, unless a later hold is set.
_PAUSE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ms = tonumber(ARGV[1])
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
if now + ms <= current then return 0 end
redis.call('SET', KEYS[1], now + ms, 'PX', ms + 1000)
redis.call('SET', KEYS[2], ARGV[2], 'PX', ms + 1000)
return 1
"""


class RedisBudget:
    """The budget shared by every process that calls ``base_url`` with ``api_key``.

    The keys are named by a digest of the API root and key (never the key
    itself), outside any ``PMRUNNER_KEY_PREFIX``: two deployments using the
    same key share Postman's limits, so they share the budget.

    Args:
        client: the Redis client.
        api_key: the Postman API key (only its digest is used).
        base_url: the API root.
        sleep: how to wait.
    """

    def __init__(
        self,
        client: redis.Redis,
        api_key: str,
        base_url: str,
        *,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        digest = hashlib.sha256(f"{base_url.rstrip('/')}\n{api_key}".encode()).hexdigest()[:20]
        base = f"pmrunner-postman-budget:{digest}"
        self._pause_keys = [f"{base}:pause", f"{base}:pause-reason"]
        self._all = f"{base}:all"
        self._monitors = f"{base}:monitors"
        self._acquire = client.register_script(_ACQUIRE)
        self._pause = client.register_script(_PAUSE)
        self._sleep = sleep

    def acquire(self, path: str, max_wait: float) -> float:
        keys = [*self._pause_keys, self._all]
        args: list[float] = [round(max_wait * 1000), _ms(1 / ALL_CALLS_PER_SECOND)]
        args.append(_ms((ALL_BURST - 1) / ALL_CALLS_PER_SECOND))
        if is_monitor_path(path):
            keys.append(self._monitors)
            interval = 1 / MONITOR_CALLS_PER_SECOND
            args += [_ms(interval), _ms((MONITOR_BURST - 1) * interval)]
        wait_ms, reason = self._acquire(keys=keys, args=args)
        if int(wait_ms) < 0:
            raise BudgetExceeded(-int(wait_ms) / 1000, _text(reason))
        wait = int(wait_ms) / 1000
        if wait > 0:
            self._sleep(wait)
        return wait

    def pause(self, seconds: float, reason: str) -> None:
        if self._pause(keys=self._pause_keys, args=[_ms(seconds), reason]):
            log.info("Postman API calls paused for %.0f s for every process: %s", seconds, reason)


def _ms(seconds: float) -> int:
    return max(0, round(seconds * 1000))


def _text(value: object) -> str | None:
    if value is None or value is False:
        return None
    return value.decode() if isinstance(value, bytes) else str(value)
