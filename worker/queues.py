"""What waits in the broker's queues: depth and the age of the oldest message.

The broker is pmrunner's Redis: kombu keeps each queue as a list (one more
list per message priority, ``<queue>\\x06\\x16<priority>``), pushes on the
left and consumers pop from the right, so a list's tail is its oldest
message. Celery's messages carry no time of sending; every pmrunner process
stamps one into the headers of what it sends (``SENT_AT_HEADER``, added by
``stamp_sent_at`` as each task message is published), and the age is read
from the tail's stamp.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import redis
from celery import signals

__all__ = [
    "SENT_AT_HEADER",
    "QueueState",
    "priority_list",
    "priority_lists",
    "queue_states",
    "stamp_sent_at",
]

SENT_AT_HEADER = "pmrunner_sent_at"
# kombu's Redis transport: a queue's lists per priority step (0 is the queue itself).
_PRIORITY_SEPARATOR = "\x06\x16"
_PRIORITY_STEPS = (0, 3, 6, 9)


@dataclass(frozen=True)
class QueueState:
    """One queue at one moment.

    Parameters:
        name: the queue (``net.<network>`` or the control queue).
        depth: messages waiting (not taken by a worker yet).
        oldest_age: seconds the oldest waiting message has waited; 0 when
            the queue is empty, None when its oldest message has no stamp.
    """

    name: str
    depth: int
    oldest_age: float | None

    def to_dict(self) -> dict[str, object]:
        """The queue as ``/health`` shows it."""
        age = None if self.oldest_age is None else round(self.oldest_age, 1)
        return {"depth": self.depth, "oldestAgeSeconds": age}


def priority_lists(queue: str) -> list[str]:
    """The Redis lists that hold a queue's messages, one per priority step."""
    return [priority_list(queue, step) for step in _PRIORITY_STEPS]


def priority_list(queue: str, priority: int) -> str:
    """The Redis list of a queue's messages of ``priority`` (one of kombu's steps)."""
    return queue if priority == 0 else f"{queue}{_PRIORITY_SEPARATOR}{priority}"


def queue_states(
    client: redis.Redis, queues: Iterable[str], now: float | None = None
) -> list[QueueState]:
    """Depth and oldest-message age of each queue, read in one round trip.

    Raises ``redis.RedisError`` when Redis does not answer.
    """
    now = time.time() if now is None else now
    names = sorted(set(queues))
    pipe = client.pipeline(transaction=False)
    for name in names:
        for key in priority_lists(name):
            pipe.llen(key)
            pipe.lindex(key, -1)
    replies = pipe.execute()
    states = []
    per_queue = 2 * len(_PRIORITY_STEPS)
    for index, name in enumerate(names):
        chunk = replies[index * per_queue : (index + 1) * per_queue]
        depth = sum(int(length) for length in chunk[0::2])
        stamps = [_sent_at(tail) for tail in chunk[1::2] if tail is not None]
        states.append(QueueState(name, depth, _oldest_age(depth, stamps, now)))
    return states


def _oldest_age(depth: int, stamps: list[float | None], now: float) -> float | None:
    if depth == 0:
        return 0.0
    known = [stamp for stamp in stamps if stamp is not None]
    if len(known) < len(stamps) or not known:
        return None
    return max(0.0, now - min(known))


def _sent_at(raw: bytes | str) -> float | None:
    """The send time stamped into a kombu message's headers (None when absent)."""
    try:
        message = json.loads(raw)
        stamp = message.get("headers", {}).get(SENT_AT_HEADER)
        return float(stamp) if stamp is not None else None
    except (ValueError, TypeError, AttributeError):
        return None


def stamp_sent_at(headers: dict[str, Any] | None = None, **_: Any) -> None:
    """Add the send time to a task message's headers (``before_task_publish``)."""
    if headers is not None:
        headers[SENT_AT_HEADER] = round(time.time(), 3)


signals.before_task_publish.connect(stamp_sent_at, weak=False)
