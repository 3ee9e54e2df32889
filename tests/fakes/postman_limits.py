"""Postman's rate limits, as the fake Postman API enforces them.

Limits hold per API key, over every client that uses it: 300 calls in any
60 s over all endpoints, and 10 calls in any 10 s to monitor endpoints. A
call over a limit is answered 429 with ``Retry-After``, the ``X-RateLimit-*``
headers and the ``{"error": "rateLimited", "message"}`` body, and is not
counted. ``hits`` counts those answers, so a test can say "0 self-caused 429s".
"""

from __future__ import annotations

import json
import math
import time
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["Limit", "RateLimits"]


@dataclass(frozen=True)
class Limit:
    """At most ``calls`` in any ``period`` seconds, to paths starting with ``prefix``."""

    calls: int
    period: float
    prefix: str = "/"


class RateLimits:
    """Sliding-window limits per API key; not thread-safe (the fake holds its lock).

    Args:
        limits: the limits that apply.
        clock: a monotonic clock.
    """

    def __init__(self, limits: list[Limit], clock: Callable[[], float] = time.monotonic) -> None:
        self.limits = limits
        self._clock = clock
        self._calls: dict[tuple[str, Limit], deque[float]] = defaultdict(deque)
        self.hits = 0

    def check(self, api_key: str, path: str) -> tuple[int, bytes, dict[str, str]] | None:
        """Count a call; a 429 answer ``(status, body, headers)`` when it is over a limit."""
        now = self._clock()
        applying = [limit for limit in self.limits if path.startswith(limit.prefix)]
        for limit in applying:
            calls = self._calls[(api_key, limit)]
            while calls and calls[0] <= now - limit.period:
                calls.popleft()
            if len(calls) >= limit.calls:
                self.hits += 1
                return _refusal(limit, calls[0] + limit.period - now)
        for limit in applying:
            self._calls[(api_key, limit)].append(now)
        return None


def _refusal(limit: Limit, wait: float) -> tuple[int, bytes, dict[str, str]]:
    seconds = max(1, math.ceil(wait))
    reset = int(time.time()) + seconds
    body = {"error": "rateLimited", "message": f"Rate limit exceeded. Retry after {reset}"}
    headers = {
        "Content-Type": "application/json",
        "Retry-After": str(seconds),
        "X-RateLimit-Limit": str(limit.calls),
        "X-RateLimit-Remaining": "0",
        "X-RateLimit-Reset": str(reset),
    }
    return 429, json.dumps(body).encode(), headers
