"""The result backend: Celery's Redis backend, minus result subscriptions on send.

pmrunner never waits on a Celery result (runs report through the run store),
yet Celery's Redis backend subscribes to the result channel of every task a
client process sends. Those subscriptions cost a round trip each and outlive
short processes such as ``pmrunner run --distributed``, which then print
errors at exit. ``AsyncResult.get()`` still works: it subscribes when called.
"""

from __future__ import annotations

import sys
from typing import Any

from celery.backends.redis import RedisBackend


class RunBackend(RedisBackend):  # type: ignore[misc]
    """Celery's Redis result backend, without subscribing when tasks are sent."""

    def on_task_call(self, producer: Any, task_id: str) -> None:
        """Sending a task subscribes to nothing (see the module documentation)."""

    def add_pending_result(
        self, result: Any, weak: bool = False, start_drainer: bool = True
    ) -> Any:
        """Subscribe to nothing yet: only a waiter (``wait_for_pending``) needs to.

        Sending a chord builds result sets whose promises would otherwise
        subscribe to every header task's channel, a round trip each.
        """
        return result

    def wait_for_pending(self, result: Any, **kwargs: Any) -> Any:
        """``AsyncResult.get()``: subscribe now that something waits, then wait."""
        super().add_pending_result(result)
        return super().wait_for_pending(result, **kwargs)

    def remove_pending_result(self, result: Any) -> Any:
        """Forget a result object; unsubscribe only where something subscribed.

        Celery calls this from ``AsyncResult.__del__``, also while the
        interpreter shuts down, when Redis may no longer be reachable.
        """
        tracked = any(result.id in mapping for mapping in self._pending_results)
        if sys.is_finalizing() or not tracked:
            return result
        return super().remove_pending_result(result)


def backend_url(redis_url: str) -> str:
    """The ``result_backend`` setting that selects ``RunBackend`` for ``redis_url``."""
    return f"worker.backend:RunBackend+{redis_url}"
