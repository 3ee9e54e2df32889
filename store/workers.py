"""Worker liveness in Redis: heartbeats, and the steps each worker holds.

A worker refreshes ``worker:<name>:alive`` (expiring after the lapse) every
third of the lapse, and notes every step it starts, sends and
hands on in ``worker:<name>:steps``. When the alive key is gone, the worker
is lost: whoever holds the upkeep lease resolves its steps from that hash.
Expiry runs on Redis' clock, so hosts with skewed clocks agree on a lapse.
"""

from __future__ import annotations

import json
from typing import Any

import redis

from store.keys import Keys, text

JSON = dict[str, Any]
# A worker's step records outlive any run (runs end within their deadline).
STEPS_KEPT_SECONDS = 24 * 3600


class WorkerBook:
    """Heartbeats and held steps of the cluster's workers."""

    def __init__(self, client: redis.Redis, keys: Keys) -> None:
        self.redis = client
        self.keys = keys

    def heartbeat(self, worker: str, lapse: float) -> None:
        """Say ``worker`` is alive for ``lapse`` more seconds."""
        pipe = self.redis.pipeline()
        pipe.set(self.keys.worker_alive(worker), "1", px=int(lapse * 1000))
        pipe.sadd(self.keys.workers(), worker)
        pipe.execute()

    def announce(self, worker: str, queues: list[str]) -> None:
        """Say which queues ``worker`` consumes (read by metrics, ``/health`` and waiters)."""
        self.redis.hset(self.keys.worker_queues(), worker, ",".join(sorted(set(queues))))

    def consumers(self) -> dict[str, list[str]]:
        """Live workers and the queues each consumes (empty for one that did not say)."""
        live = self.live()
        if not live:
            return {}
        announced = self.redis.hmget(self.keys.worker_queues(), live)
        return {
            name: [queue for queue in text(queues or "").split(",") if queue]
            for name, queues in zip(live, announced, strict=True)
        }

    def signed_off(self, worker: str) -> None:
        """A worker that stopped cleanly: it holds nothing and is not lost."""
        pipe = self.redis.pipeline()
        pipe.delete(self.keys.worker_alive(worker), self.keys.worker_steps(worker))
        pipe.srem(self.keys.workers(), worker)
        pipe.hdel(self.keys.worker_queues(), worker)
        pipe.execute()

    def lapsed(self) -> list[str]:
        """Workers that heartbeat no more and whose steps are not resolved yet."""
        return [name for name, alive in self._known().items() if not alive]

    def live(self) -> list[str]:
        """Workers whose heartbeat has not lapsed."""
        return [name for name, alive in self._known().items() if alive]

    def known(self) -> list[str]:
        """Every worker that heartbeat and was not resolved yet, alive or lapsed."""
        return sorted(text(name) for name in self.redis.smembers(self.keys.workers()))

    def _known(self) -> dict[str, bool]:
        """Every worker that heartbeat, and whether it still does."""
        names = self.known()
        pipe = self.redis.pipeline()
        for name in names:
            pipe.exists(self.keys.worker_alive(name))
        return dict(zip(names, (bool(alive) for alive in pipe.execute()), strict=True))

    def holds(self, worker: str, field: str) -> bool:
        """Whether ``worker`` noted the step ``field`` (received, started or handing on)."""
        return bool(self.redis.hexists(self.keys.worker_steps(worker), field))

    def held(self, worker: str) -> dict[str, JSON]:
        """The steps ``worker`` holds: field -> entry (args, queue, phase, method, next)."""
        raw = self.redis.hgetall(self.keys.worker_steps(worker))
        return {text(field): json.loads(value) for field, value in raw.items()}

    def release(self, worker: str, field: str) -> None:
        """A held step is resolved."""
        self.redis.hdel(self.keys.worker_steps(worker), field)

    def forget(self, worker: str) -> None:
        """Every step of a lost worker is resolved: forget it (unless it came back)."""
        if self.redis.exists(self.keys.worker_alive(worker)):
            return
        pipe = self.redis.pipeline()
        pipe.delete(self.keys.worker_steps(worker))
        pipe.srem(self.keys.workers(), worker)
        pipe.hdel(self.keys.worker_queues(), worker)
        pipe.execute()

    def server_uptime(self) -> float:
        """Seconds since Redis started (a restart loses no keys, but delays heartbeats)."""
        return float(self.redis.info("server").get("uptime_in_seconds", 0))
