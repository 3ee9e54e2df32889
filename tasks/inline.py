"""Running the next step of a sequence in the same task, instead of through the broker.

A dependent sequence runs one step per task: the worker that finished step
N used to send step N+1 through Redis, and some worker's consumer took it
and gave it to a pool thread. When step N+1 goes to the very queue step N
came from, this worker would be as good a place as any to run it, so it
runs it at once in the same thread: no message, no consumer, no second
``begin_step``. The step keeps every guarantee of a delivered one:

- it is claimed in the same Lua call that records step N (``finish_step``
  with ``inline``): its holder id owns it, and this worker's held steps
  name it (phase ``started``) from that instant, so a worker lost while
  running it has it resolved like any other (sent again with a token, or
  reported as outcome unknown after an unsafe request);
- when its request is the first thing it does (no pre-request script, which
  could change or skip it), the same call notes that request as sent, with
  its method, as ``mark_sent`` would just before sending: so an inlined
  step costs one round trip to Redis (recording it), not two. A worker lost
  between that call and the send has its step resolved as one lost after
  sending (a safe request retried and flagged, an unsafe one reported as
  outcome unknown), as one lost while connecting already is;
- the compare-and-set on the holder stays: a worker taken for lost that
  comes back finds the step taken over and writes nothing, sends nothing;
- a step for another queue (another network, the control queue) is still
  sent there, and the chord still counts one task per branch (the task
  that ends the branch, or the last one it replaces itself with).

Inlining is bounded (``INLINE_SECONDS``, ``INLINE_STEPS``): the message
that started the task stays unacknowledged while it runs, the thread serves
no other run meanwhile, and a worker asked to stop waits for it. After the
budget, the next step goes through the broker as before (one hop a second
or so costs a few percent of a long sequence, and any other run's waiting
message gets a thread within about a second). A worker that is stopping
inlines nothing more.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple

from celery.worker import state as worker_state

from store.records import StepHolder, StepStart

if TYPE_CHECKING:
    from scheduler.planner import Branch
    from tasks.context import RunContext

JSON = dict[str, Any]

# A task runs inlined steps for at most this long after it started (one more
# step may begin just before the budget ends; steps are bounded by their timeouts).
INLINE_SECONDS = 1.0
# And at most this many steps, however fast they are.
INLINE_STEPS = 200


@dataclass
class InlineBudget:
    """What one task may still run itself.

    Parameters:
        task_id: the Celery task's id.
        queue: the queue the task's message came from ("" for an eager
            call: nothing is inlined).
        started: ``time.monotonic()`` when the task started.
        steps: how many steps the task inlined so far.
    """

    task_id: str
    queue: str
    started: float = field(default_factory=time.monotonic)
    steps: int = 0

    def allows(self, successor: Any) -> bool:
        """Whether ``successor`` (the next step's signature) may run in this task now."""
        options = successor.options
        if not self.queue or options.get("queue") != self.queue:
            return False
        if options.get("countdown") or options.get("eta"):
            return False  # a step that must wait does not wait on this thread
        if self.steps >= INLINE_STEPS or time.monotonic() - self.started >= INLINE_SECONDS:
            return False
        return not _worker_stopping()

    def holder(self, current: StepHolder, number: int, args: list[Any]) -> StepHolder:
        """The holder of the inlined step ``number`` (its ``args``), run where ``current`` runs.

        Its id names the task and the step: unique per step, never a Celery
        task id nor a resend token, so no message can claim the step as its own.
        """
        self.steps += 1
        task_id = f"{self.task_id}/{number}"
        entry = {
            "args": args,
            "queue": current.queue,
            "tag": current.entry.get("tag"),
            "task": task_id,
            "token": "",
        }
        return StepHolder(current.worker, task_id, current.queue, entry)


class Inlined(NamedTuple):
    """The next step, claimed by this task (``tasks.inline``): run it here."""

    number: int
    cursor: JSON
    holder: StepHolder
    claim: StepStart
    sent: str  # the method already noted as sent for it ("" for none)


def method_sent_first(context: RunContext, branch: Branch, cursor: JSON) -> str:
    """The method of the item at ``cursor`` when its request is the first thing its step
    does (no pre-request script, which could change or skip it); "" otherwise."""
    item = context.item(context.position(branch, cursor)[0])
    if item.script_chain("prerequest"):
        return ""
    method = item.request.get("method") if isinstance(item.request, dict) else None
    if method in (None, ""):
        return "GET"
    return method.upper() if isinstance(method, str) and method.isalpha() else ""


def _worker_stopping() -> bool:
    """Whether this worker is shutting down (warm or cold)."""
    return bool(worker_state.should_stop or worker_state.should_terminate)
