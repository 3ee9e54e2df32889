"""The tasks of a distributed run: execute one request, finalize the run.

A run is one chord: its header holds the first step of every branch of the
plan, its callback is ``finalize_run``. A step runs one request and, when
its branch goes on, *replaces itself* with the next step, sent to the queue
of the network that can reach the next request's host (decided now, with
the variables the step's scripts just set). So each request is its own step,
a sequence keeps its order and state, and the chord completes when every
branch has. When the next step goes to the very queue this step came from,
the task runs it itself, for a bounded while (``tasks.inline``): a hop
through the broker costs more than the step.

``execute_request`` never raises into the chord: whatever happens, the step
records a result. Exactly one finalizer reports the run (``SET NX``).
"""

from __future__ import annotations

import json
import logging
import socket
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from celery import Task, shared_task
from celery.exceptions import Ignore

from pmrunner.errors import StepTakenOver
from runtime.exchange import OutgoingRequest
from runtime.results import Execution, ScriptError
from runtime.sandbox.pool import default_pool
from runtime.state import RunState
from runtime.step import Step
from scheduler.planner import Branch
from store.records import StepHolder, StepStart
from tasks.context import RunContext, Services, contexts
from tasks.egress import with_egress
from tasks.finalize import finalize_if_complete
from tasks.handover import PREPARED, resume_prepared, save_prepared
from tasks.inline import InlineBudget, Inlined, method_sent_first
from tasks.messages import EXECUTE_REQUEST, FINALIZE_RUN, step_key
from tasks.report_order import report_later
from tasks.successor import (
    data_row,
    dynamic_next,
    network_of,
    route_for,
    step_signature,
    successor_of,
)
from tasks.tracked_client import client_for_this_thread
from worker.metrics import REQUESTS_EXECUTED

log = logging.getLogger(__name__)
JSON = dict[str, Any]


class StepTask(Task):  # type: ignore[misc]
    """The class of ``execute_request``: a step hands its branch on without an exception.

    Celery's ``replace`` sends the successor (which takes over the task's id
    and its place in the chord) and raises ``Ignore`` so that this delivery
    does not count as the chord's part; the worker then formats that
    exception's traceback, which took a sixth of a hop's time. Here this
    delivery leaves the chord instead, and returns.
    """

    def on_replace(self, sig: Any) -> Any:
        if self.request.is_eager:
            return super().on_replace(sig)
        sig.delay()
        self.request.chord = None  # the successor is the chord's part now
        return None


@shared_task(
    bind=True,
    base=StepTask,
    name=EXECUTE_REQUEST,
    acks_late=True,
    reject_on_worker_lost=True,
    # Steps report through the run registry; the chord is still counted
    # (Celery calls on_chord_part_return whether or not a result is stored).
    ignore_result=True,
)
def execute_request(
    self: Task, run_id: str, branch_key: str, number: int, cursor: JSON, token: str = ""
) -> JSON:
    """Run step ``number`` of a branch; then hand the branch on, or end it.

    Parameters:
        run_id: the run.
        branch_key: the plan's branch this step belongs to.
        number: the step's number within the branch (0, 1, ...).
        cursor: where the branch is: ``{"index": i}`` into a static branch's
            steps, or ``{"index": i, "iteration": n}`` into a dynamic one's items.
        token: set when the step was handed over or sent again (its worker
            was lost); only the delivery carrying it may run the step then.
    """
    services = Services.of(self.app)
    holder = holder_of(self, [run_id, branch_key, number, cursor], token)
    budget = InlineBudget(holder.task_id, holder.queue if not self.request.is_eager else "")
    begun: StepStart | None = None  # set for a step this task claimed itself (inlined)
    noted = ""  # the method an inlined step's claim noted as sent
    while True:
        key = step_key(branch_key, number)
        try:
            outcome = _run_step(
                services, run_id, branch_key, number, cursor, holder, token, budget, begun, noted
            )
        except Exception as error:
            log.exception("step %s of run %s failed inside pmrunner", key, run_id)
            _record_internal_error(services, run_id, branch_key, number, cursor, error, holder)
            outcome = (None, True)
        if not isinstance(outcome, Inlined):
            break
        number, cursor, holder, begun, noted = outcome
        token = ""
    successor, ended = outcome
    if successor is not None:
        try:
            self.replace(successor)
        except Ignore:  # replaced the way Celery does it (an eager call)
            services.registry.handed_on(run_id, key, holder.worker)
            raise
        services.registry.handed_on(run_id, key, holder.worker)
    if ended:
        end_branch(services, run_id, branch_key)
    return {"run": run_id, "branch": branch_key, "steps": number + 1}


def holder_of(task: Task, args: list[Any], token: str) -> StepHolder:
    """Who runs this delivery of a step: worker, task id, queue, and the step's message."""
    delivery = task.request.delivery_info or {}
    queue = str(delivery.get("routing_key") or "")
    task_id = str(task.request.id or "")
    entry = {
        "args": args,
        "queue": queue,
        "tag": delivery.get("delivery_tag"),
        "task": task_id,
        "token": token,
    }
    worker = task.request.hostname or socket.gethostname()
    return StepHolder(worker, task_id, queue, entry)


def end_branch(services: Services, run_id: str, branch_key: str) -> None:
    """Note that a branch ended; the last branch to end reports the run at once."""
    ended = services.registry.mark_branch_done(run_id, branch_key)
    context = contexts.get(run_id)  # its ticket, when this process has read it already
    ticket = context.ticket if context else None
    if finalize_if_complete(services, run_id, ended, ticket=ticket) is not None:
        _forget_run(run_id)


def _forget_run(run_id: str) -> None:
    """The run was reported from this process: free its script context and parsed parts now.

    Other workers of the run free theirs once idle (they are not told).
    """
    default_pool().release(run_id)
    contexts.forget(run_id)


def _run_step(
    services: Services,
    run_id: str,
    branch_key: str,
    number: int,
    cursor: JSON,
    holder: StepHolder,
    token: str,
    budget: InlineBudget,
    begun: StepStart | None = None,
    noted: str = "",
) -> tuple[Any, bool] | Inlined:
    """Run the step.

    Returns the next step's signature (or None) and whether the branch ended
    here, or the next step when this task runs it itself (``tasks.inline``;
    ``begun`` is then its claim, made with this step's result, and ``noted``
    the method that claim noted as sent). A duplicate
    delivery of a finished step runs nothing again, and hands the branch on
    only if the first delivery did not get to; a duplicate of a step that
    another delivery is running is dropped.
    """
    registry = services.registry
    key = step_key(branch_key, number)
    context = contexts.get(run_id)
    if begun is None and context is not None and not token and not cursor.get(PREPARED):
        # Its request goes out first: noted as sent with the claim (a first attempt).
        noted = method_sent_first(context, context.branch(branch_key), cursor)
    start = begun or registry.begin_step(
        run_id, key, branch_key, holder, token=token, with_ticket=context is None, sent=noted
    )
    if begun is None and start.attempt != 1:
        noted = ""  # not noted: the request is noted when it goes out
    if context is None and start.ticket is not None:
        context = RunContext.from_ticket(services, start.ticket)
        contexts.put(context)
    if start.outcome == "busy":
        where = start.started.get("worker")
        log.warning("step %s of run %s is already running on %s; dropped", key, run_id, where)
        return None, False
    if context is None or start.outcome == "final":
        log.warning("step %s of run %s arrived after the run ended; dropped", key, run_id)
        return None, False
    if start.result is not None:
        log.warning("step %s of run %s was delivered again after it finished", key, run_id)
        return _hand_on(
            services, context, branch_key, number, start.result.get("next"), start.state
        )
    branch = context.branch(branch_key)
    state = RunState(**start.state)
    item_id, iteration = context.position(branch, cursor)
    state.iteration = iteration
    state.data = data_row(context, iteration)
    execution = Execution(
        id=0,
        item_id=item_id,
        item_name="",
        iteration=iteration,
        worker=holder.worker,
        network=network_of(holder.queue, services),
        attempt=max(start.attempt, 1),
    )
    if start.note:
        execution.console.append(("info", start.note))

    def sent(request: OutgoingRequest) -> None:
        if not registry.mark_sent(run_id, key, request.method.upper(), holder):
            log.warning("step %s of run %s: resolved elsewhere; request not sent", key, run_id)
            raise StepTakenOver(f"step {key} was resolved, or its run ended, before it was sent")

    next_cursor = _execute(
        services, context, branch, cursor, state, execution, (key, holder.queue), (sent, noted)
    )
    if isinstance(next_cursor, _Handover):  # its own pre-request scripts moved the request
        handover = uuid.uuid4().hex  # only the delivery it goes to may run the step now
        registry.send_again(run_id, key, handover, "", owner=holder.task_id)
        signature = step_signature(services, context, branch_key, number, next_cursor.cursor)
        return signature.clone(kwargs={"token": handover}), False
    REQUESTS_EXECUTED.labels(execution.network or "").inc()
    result = {"executions": [execution.to_dict()], "next": next_cursor}
    successor = successor_of(services, context, branch_key, number, next_cursor, state)
    handoff = None
    if successor is not None:
        handoff = (
            step_key(branch_key, number + 1),
            str(successor.options["queue"]),
            list(successor.args),
        )
    if successor is None:
        # The branch ends here: recording the step counts the branch, in one round trip.
        ended = registry.finish_branch(run_id, key, branch_key, result, asdict(state), holder)
        if ended is None:  # whoever recorded it (a twin, the resolver) counts the branch
            return None, False
        if report_later(services, run_id, ended, context.ticket):
            return None, False
        if finalize_if_complete(services, run_id, ended, ticket=context.ticket) is not None:
            _forget_run(run_id)
        return None, False
    state_json = asdict(state)
    inline, noted_next = None, ""
    if budget.allows(successor):
        inline = budget.holder(holder, number + 1, list(successor.args))
        noted_next = method_sent_first(context, branch, successor.args[3])
    _recorded, handed = registry.finish_step(
        run_id, key, branch_key, result, state_json, handoff, holder, inline, noted_next
    )
    if not handed:
        return None, False
    if inline is None:
        return successor, False
    # As begin_step would give it: the state as stored (a JSON copy), first attempt.
    claim = StepStart("run", attempt=1, state=json.loads(json.dumps(state_json)))
    return Inlined(number + 1, successor.args[3], inline, claim, noted_next)


def _hand_on(
    services: Services,
    context: RunContext,
    branch_key: str,
    number: int,
    cursor: JSON | None,
    state_json: JSON,
) -> tuple[Any, bool]:
    """For a re-delivered finished step: send its successor unless that was done."""
    successor = successor_of(services, context, branch_key, number, cursor, RunState(**state_json))
    if successor is None:
        return None, True
    next_key = step_key(branch_key, number + 1)
    if not services.registry.claim_handoff(
        context.ticket.run_id, next_key, successor.options["queue"]
    ):
        return None, False
    return successor, False


@dataclass(frozen=True)
class _Handover:
    """The step goes on in another network's queue (``cursor`` is marked prepared)."""

    cursor: JSON


def _execute(
    services: Services,
    context: RunContext,
    branch: Branch,
    cursor: JSON,
    state: RunState,
    execution: Execution,
    where: tuple[str, str],
    sending: tuple[Callable[[OutgoingRequest], None], str],
) -> JSON | _Handover | None:
    """Run the item with ``state``; return the cursor of the branch's next step.

    When the item's own pre-request scripts moved its request to a host that
    another network reaches, the step stops after them and is handed over.
    The requests leave under this worker's egress policy for the step's network.
    ``where`` is the step's key and the queue it came from; ``sending`` is
    what is told of each request before it goes out (see ``TrackedClient``)
    and the method already noted as sent for the step ("" for none).
    """
    key, queue = where
    on_send, noted = sending
    item = context.item(execution.item_id)
    execution.item_name = item.name
    execution.path = item.path
    run_id = context.ticket.run_id
    if cursor.get(PREPARED):
        prepared = resume_prepared(services, run_id, key, state, execution)
    options = with_egress(
        context.options, services.settings, execution.network, context.ticket.networks
    )
    client = client_for_this_thread(options)
    client.jar.clear()  # the jar is the run's, and it travels in the state
    client.import_cookies(state.cookies)
    client.begin_step(on_send, noted)
    step = Step(
        context.collection,
        options,
        client,
        # The run's own script context in this process, never another run's.
        default_pool().scripts_for(context.ticket.run_id, context.options.script_limits),
    )
    if not cursor.get(PREPARED):
        prepared = step.prepare(item, state, execution, position=int(cursor.get("index", 0)))
        target = route_for(context, item, state, services, request=prepared.request)
        if queue and not prepared.skipped and target != queue:
            state.cookies = client.export_cookies()
            client.jar.clear()
            save_prepared(services, run_id, key, prepared, state, execution)
            return _Handover({**cursor, PREPARED: True, "queue": target})
    result = (
        prepared.result(execution)
        if prepared.skipped
        else step.complete(prepared, item, state, execution)
    )
    state.cookies = client.export_cookies()
    client.jar.clear()
    client.begin_step(None)
    if branch.dynamic:
        return dynamic_next(context, cursor, result.has_next_request, result.next_request)
    if context.options.bail and execution.failed:
        return None
    following = int(cursor["index"]) + 1
    return {"index": following} if following < len(branch.steps) else None


def _record_internal_error(
    services: Services,
    run_id: str,
    branch_key: str,
    number: int,
    cursor: JSON,
    error: Exception,
    holder: StepHolder,
) -> None:
    """Record a step that failed inside pmrunner; its branch stops there (``aborted``)."""
    key = step_key(branch_key, number)
    item_id, item_name, iteration = "", "(step failed)", int(cursor.get("iteration", 0))
    context = contexts.get(run_id)
    if context is not None:
        try:
            item_id, iteration = context.position(context.branch(branch_key), cursor)
            item_name = context.item(item_id).name
        except Exception:
            log.debug("no item for failed step %s of run %s", key, run_id)
    execution = Execution(
        id=0,
        item_id=item_id,
        item_name=item_name,
        iteration=iteration,
        worker=holder.worker,
        network=network_of(holder.queue, services),
    )
    execution.errors.append(ScriptError("internal", type(error).__name__, str(error)))
    result = {"executions": [execution.to_dict()], "next": None, "aborted": True}
    try:
        services.registry.record_step(run_id, key, result)
        services.registry.handed_on(run_id, key, holder.worker)
    except Exception:
        log.exception("could not record the failure of step %s of run %s", key, run_id)


@shared_task(bind=True, name=FINALIZE_RUN, acks_late=True)
def finalize_run(self: Task, run_id: str) -> JSON | None:
    """The chord callback, or the report a busy worker left for later: report the run
    if every branch has ended.

    On an idle worker the last branch to end has reported the run already
    (the ``NX`` guard makes this a no-op then). A duplicate delivery can
    complete the chord early: then the last step, the lost-worker resolution
    or the sweeper at the deadline reports it instead.
    """
    services = Services.of(self.app)
    registry = services.registry
    report = None
    # Reported already (the usual case for the chord's callback): the ticket need not be read.
    if not registry.redis.exists(registry.keys.run_final(run_id)):
        report = finalize_if_complete(services, run_id)
    if report is not None:
        _forget_run(run_id)
    report = report or services.store.get(run_id)
    if report is None and services.registry.ticket(run_id) is None:
        return None  # no such run (another cluster's, or long gone)
    return run_outcome(run_id, report)


def run_outcome(run_id: str, report: JSON | None) -> JSON:
    """What ``finalize_run`` returns, for Flower's result column: the run's status and counts.

    Every task of a run succeeds as a task, whatever its requests and
    assertions did; this result is where Flower shows that a run failed.
    """
    if report is None:  # a branch still runs: its end, or the sweeper, reports the run
        return {"run": run_id, "status": "running"}
    assertions = [
        assertion
        for execution in (report.get("run") or {}).get("executions") or []
        for assertion in execution.get("assertions") or []
        if not assertion.get("skipped")
    ]
    return {
        "run": run_id,
        "status": report["status"],
        "monitor": (report.get("monitor") or {}).get("name"),
        "collection": report.get("collectionName"),
        "assertions": len(assertions),
        "assertionsFailed": sum(1 for assertion in assertions if not assertion.get("passed")),
    }
