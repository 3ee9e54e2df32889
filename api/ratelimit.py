"""Per-client request limits of the HTTP API: a sliding window in memory.

Each client (an API key, or an address for requests without a valid key)
may make ``limit`` requests in any ``period`` seconds. A request over the
limit is refused with the time until a slot frees up, which becomes the
``Retry-After`` header. Counts are per API process; behind a load balancer
each process counts for itself.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from scheduler.ratelimit import SlidingWindow


@dataclass
class _Client:
    window: SlidingWindow
    last_seen: float


class ClientRateLimiter:
    """At most ``limit`` requests per client in any ``period`` seconds.

    Not thread-safe: the API calls it from its event loop only.

    Parameters:
        limit: requests allowed per client and period; at least 1.
        period: the window's length in seconds.
        clock: a monotonic clock in seconds (tests pass their own).
    """

    def __init__(
        self,
        limit: int,
        period: float = 60.0,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if limit < 1:
            raise ValueError(f"rate limit must be at least 1 request, got {limit}")
        self.limit = limit
        self.period = period
        self._clock = clock
        self._clients: dict[str, _Client] = {}
        self._next_purge = clock() + period

    def check(self, client: str) -> float | None:
        """Count a request of ``client``; None when it may go on.

        Returns:
            None when the request is within the limit (it is counted), else
            the seconds until the client may send again (it is not counted).
        """
        now = self._clock()
        self._purge_idle(now)
        state = self._clients.get(client)
        if state is None:
            state = self._clients[client] = _Client(SlidingWindow(self.limit, self.period), now)
        earliest = state.window.earliest(now)
        if earliest > now:
            return earliest - now
        state.window.record(now)
        state.last_seen = now
        return None

    def _purge_idle(self, now: float) -> None:
        """Forget clients idle for a whole period, so memory stays bounded by active clients."""
        if now < self._next_purge:
            return
        self._next_purge = now + self.period
        idle = [key for key, state in self._clients.items() if now - state.last_seen > self.period]
        for key in idle:
            del self._clients[key]

    def __len__(self) -> int:
        return len(self._clients)
