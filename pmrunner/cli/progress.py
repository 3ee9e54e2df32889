"""What ``pmrunner run --distributed`` says while it waits for the workers.

One line per request a worker finished (as it finishes), and, a few seconds
after the start, one line for each queue the run waits on that no live
worker consumes (from the workers' heartbeats and the queues they
announced), with the command that starts one. A run it stops waiting for
(``--wait`` ran out, or Ctrl-C) is ended at once: its report says which
requests did not run, and its messages still waiting in the queues are
removed, so no worker that starts later runs them.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tasks.context import Services

JSON = dict[str, Any]
# Until then, waiting for a worker to take the first request is normal.
NO_WORKER_NOTICE_SECONDS = 5.0
CONSUMER_CHECK_SECONDS = 2.0
REPORT_POLL_SECONDS = 0.5


class RunWatch:
    """Follows one distributed run and prints its progress.

    Parameters:
        services: Redis-backed services of the run's cluster.
        run_id: the run.
        echo: prints one line (to stderr: stdout carries the reports).
        clock: seconds, monotonic.
    """

    def __init__(
        self,
        services: Services,
        run_id: str,
        echo: Callable[[str], None],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.services = services
        self.run_id = run_id
        self.echo = echo
        self.clock = clock
        self.finished: set[str] = set()  # step keys with a result
        self.requests = 0
        self.unconsumed: set[str] = set()  # queues said to have no worker
        self._next_check = clock() + NO_WORKER_NOTICE_SECONDS

    def wait(self, seconds: float) -> JSON | None:
        """The run's report once stored; None after ``seconds`` (progress printed meanwhile)."""
        from tasks.finalize import wait_for_report

        deadline = self.clock() + seconds
        while True:
            remaining = deadline - self.clock()
            wait = max(0.0, min(remaining, REPORT_POLL_SECONDS))
            report = wait_for_report(self.services, self.run_id, wait)
            self.poll()
            if report is not None or remaining <= 0:
                return report

    def poll(self) -> None:
        """Print the requests finished since the last poll; check the queues' workers when due."""
        fresh = self.services.registry.results_besides(self.run_id, self.finished)
        for step in sorted(fresh, key=_step_order):
            self.finished.add(step)
            for execution in fresh[step].get("executions") or []:
                self.requests += 1
                self.echo(f"  [{self.requests}] {describe_execution(execution)}")
        # Requests that finish while a queue was said to have no worker: one came.
        if self.clock() >= self._next_check or (fresh and self.unconsumed):
            self._next_check = self.clock() + CONSUMER_CHECK_SECONDS
            self.check_consumers()

    def pending_queues(self) -> set[str]:
        """The queues of the run's steps that were sent and have no result yet."""
        ticket = self.services.registry.ticket(self.run_id)
        if ticket is None:
            return set()
        sent = dict(ticket.queues)
        for field, value in self.services.registry.progress(self.run_id).items():
            if field.endswith(":queue"):
                sent[field.removesuffix(":queue")] = value
        return {str(queue) for step, queue in sent.items() if step not in self.finished}

    def check_consumers(self) -> None:
        """Say which pending queues no live worker consumes (once), and when one comes."""
        consumers = self.services.workers.consumers()
        if any(not queues for queues in consumers.values()):
            return  # a worker that did not say what it consumes: it may consume any
        consumed = {queue for queues in consumers.values() for queue in queues}
        for queue in sorted(self.unconsumed & consumed):
            self.unconsumed.discard(queue)
            self.echo(f"  a worker consumes {queue} now")
        for queue in sorted(self.pending_queues() - consumed - self.unconsumed):
            self.unconsumed.add(queue)
            self.echo(no_worker_line(queue, alive=len(consumers)))

    def abandon(self) -> int:
        """End the run now (nobody waits for it): report what ran, remove its waiting messages.

        Returns how many of its messages were still waiting in the queues.
        """
        from tasks.finalize import finalize

        queues = self.pending_queues()
        before = waiting_messages(self.services, self.run_id, queues)
        finalize(self.services, self.run_id)
        return before


def waiting_messages(services: Services, run_id: str, queues: set[str]) -> int:
    """How many messages of the run wait in ``queues`` (their task arguments name the run)."""
    client = services.registry.redis
    count = 0
    for queue in queues:
        count += sum(1 for raw in client.lrange(queue, 0, -1) if run_id.encode() in raw)
    return count


def no_worker_line(queue: str, *, alive: int) -> str:
    who = "no pmrunner worker is alive" if alive == 0 else f"none of the {alive} live workers"
    return (
        f"  waiting: {who} consumes {queue}; its requests run when one does"
        f" (celery -A worker worker -Q {queue})"
    )


def describe_execution(execution: JSON) -> str:
    """One finished request: name, method, status or error, time, where it ran."""
    request = execution.get("request") or {}
    response = execution.get("response")
    name = str(execution.get("item_name") or "")
    method = str(request.get("method") or "")
    if response:
        outcome = f"{response.get('code')} {response.get('status') or ''}".rstrip()
        outcome += f", {float(response.get('response_time_ms') or 0):.0f} ms"
    else:
        errors = execution.get("errors") or [{}]
        outcome = str(errors[0].get("message") or "no response")
    failed = sum(1 for a in execution.get("assertions") or [] if not a.get("passed"))
    if failed:
        outcome += f", {failed} assertion{'s' if failed > 1 else ''} failed"
    where = execution.get("network") or ""
    if execution.get("worker"):
        where = f"{where} on {execution['worker']}".strip()
    return f"{name}: {method} {outcome}".replace(":  ", ": ") + (f" ({where})" if where else "")


def _step_order(step: str) -> tuple[str, int]:
    branch, _, number = step.rpartition(":")
    return branch, int(number) if number.isdigit() else 0
