"""Finalizing a run: assemble its report from what the steps recorded, once.

Both the chord callback and the sweeper end here. ``finalize`` claims the
run with ``SET NX``, so exactly one of them reports it. Steps that never
ran (a queue nobody consumed, a worker lost mid-request) appear in the
report as errors that say why.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from runtime.masking import masked_script_lines, state_secrets
from runtime.reporters.run_shapes import build_report
from runtime.results import Execution, Run, ScriptError, parse_iso, utc_now
from scheduler.planner import Branch, Plan
from store import RunTicket
from tasks.context import Services

log = logging.getLogger(__name__)
JSON = dict[str, Any]
MASK = "********"


def finalize_if_complete(
    services: Services,
    run_id: str,
    ended: int | None = None,
    *,
    ticket: RunTicket | None = None,
) -> JSON | None:
    """Report the run when every branch has ended; None while one runs (or if reported).

    Parameters:
        services: Redis-backed services.
        run_id: the run.
        ended: how many branches have ended, when the caller just counted them.
        ticket: the run's ticket, when the caller holds it (it never changes
            once the run is dispatched; a run's ticket can run to megabytes,
            so every step of a large run reading it again was quadratic).
    """
    ticket = ticket or services.registry.ticket(run_id)
    if ticket is None:
        return None
    if ended is None:
        ended = services.registry.branches_done(run_id)
    if ended < len(ticket.plan["branches"]):
        return None
    return finalize(services, run_id)


def finalize(services: Services, run_id: str, *, swept: bool = False) -> JSON | None:
    """Build, store and announce the run's report; None if another finalizer won."""
    registry = services.registry
    ticket = registry.ticket(run_id)
    if ticket is None or not registry.claim_final(run_id):
        return None
    progress = registry.progress(run_id)
    states = registry.states(run_id)
    run = assemble_run(ticket, registry.results(run_id), progress, states, swept=swept)
    report = build_report(
        run,
        run_id=run_id,
        source=ticket.source,
        environment_id=ticket.environment_id,
        monitor=ticket.monitor,
    )
    masked_scripts = _masked_scripts(registry.collection(ticket.collection_digest), states)
    if masked_scripts:
        report["maskedScripts"] = masked_scripts
    services.store.save(report)
    # Imported here: waiting for a report (the CLI) needs no metrics.
    from worker.metrics import RUNS_FINISHED, RUNS_SWEPT

    RUNS_FINISHED.labels(report["status"], ticket.source).inc()
    if swept:
        RUNS_SWEPT.inc()
    registry.release_collection(ticket.collection_digest, run_id)
    removed = registry.close(run_id, _queues_of(ticket, progress, run))
    if removed:
        log.info("run %s: %d waiting messages removed", run_id, removed)
    finished = registry.keys.run_finished(run_id)
    pipe = registry.redis.pipeline()
    pipe.rpush(finished, report["status"])
    pipe.expire(finished, 3600)
    pipe.execute()
    _announce(services, report, ticket)
    log.info("run %s finalized: %s (%d executions)", run_id, report["status"], len(run.executions))
    return report


def _queues_of(ticket: RunTicket, progress: dict[str, Any], run: Run) -> list[str]:
    """The queues that may still hold messages of a run that ended with steps missing."""
    if not any(_is_missing(execution) for execution in run.executions):
        return []
    sent = [str(value) for key, value in progress.items() if key.endswith(":queue")]
    return [*{*ticket.queues.values(), *sent}]


def _is_missing(execution: Execution) -> bool:
    return any(error.name == "RunIncomplete" for error in execution.errors)


def _announce(services: Services, report: JSON, ticket: RunTicket) -> None:
    """Hand the report to its reporters (webhooks, monitor notifications)."""
    from tasks.notify import announce_run  # the notify module imports Celery tasks

    announce_run(services, report, ticket)


def wait_for_report(services: Services, run_id: str, timeout: float) -> JSON | None:
    """Block until the run's report is stored (or ``timeout`` seconds pass).

    A run still unreported at its deadline is finalized here, as the sweeper
    would: whoever waits gets a report even where no beat runs a sweeper.
    """
    key = services.registry.keys.run_finished(run_id)
    deadline = time.monotonic() + timeout
    ticket = services.registry.ticket(run_id)
    while True:
        report = services.store.get(run_id)
        if report is not None:
            return report
        if ticket is not None and time.time() > ticket.deadline:
            finalize(services, run_id, swept=True)
            ticket = None  # finalized here or by someone else: the store has it now
            continue
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return None
        services.registry.redis.blpop([key], timeout=min(remaining, 1.0))


def assemble_run(
    ticket: RunTicket,
    results: dict[str, JSON],
    progress: dict[str, Any],
    states: dict[str, JSON],
    *,
    swept: bool,
) -> Run:
    """The run as its steps left it, with missing steps reported as errors."""
    plan = Plan.from_dict(ticket.plan)
    started = parse_iso(ticket.started_at) or utc_now()
    run = Run(
        collection_id=ticket.collection_id,
        collection_name=ticket.collection_name,
        iterations=ticket.iterations,
        started_at=started,
        environment_name=ticket.environment_name,
    )
    order = _collection_order(ticket)
    ordered: list[tuple[tuple[int, int, int], Execution]] = []
    for branch_number, branch in enumerate(plan.branches):
        recorded = _branch_executions(branch, results)
        for step_number, execution in enumerate(recorded):
            rank = (
                (branch_number, step_number, 0)
                if branch.dynamic
                else (execution.iteration, order.get(execution.item_id, 0), step_number)
            )
            ordered.append((rank, execution))
        for execution in _missing(branch, results, progress, ticket):
            ordered.append(
                ((execution.iteration, order.get(execution.item_id, 0), 1 << 30), execution)
            )
    if not plan.branches or not any(b.dynamic for b in plan.branches):
        ordered.sort(key=lambda pair: pair[0])
    run.executions = [execution for _, execution in ordered]
    for number, execution in enumerate(run.executions, start=1):
        execution.id = number
    run.finished_at = utc_now()
    initial = states.get("initial") or {}
    run.environment = _masked(_merged(initial, states, plan, "environment"))
    run.globals = _masked(_merged(initial, states, plan, "globals"))
    if swept and not run.executions and plan.branches:
        run.run_errors.append(
            ScriptError(
                "run", "RunIncomplete", "the run ended at its deadline before any request ran"
            )
        )
    return run


def _collection_order(ticket: RunTicket) -> dict[str, int]:
    return {item_id: position for position, (item_id, _name) in enumerate(ticket.items)}


def _branch_executions(branch: Branch, results: dict[str, JSON]) -> list[Execution]:
    found: list[Execution] = []
    number = 0
    while f"{branch.key}:{number}" in results:
        for raw in results[f"{branch.key}:{number}"]["executions"]:
            found.append(Execution.from_dict(raw))
        number += 1
    return found


def _missing(
    branch: Branch,
    results: dict[str, JSON],
    progress: dict[str, Any],
    ticket: RunTicket,
) -> list[Execution]:
    """Steps a branch should have run but did not, each with the reason."""
    number = 0
    while f"{branch.key}:{number}" in results:
        number += 1
    last = results.get(f"{branch.key}:{number - 1}") if number else None
    if last is not None and last.get("aborted"):
        why = last.get("reason") or "failed inside pmrunner"
        reason = f"not run: step {number - 1} of its sequence {why}"
        if branch.dynamic:
            return []  # where a dynamic branch would have gone is unknown
        refs = [(ref.item_id, ref.iteration) for ref in branch.steps[number:]]
        return [_missing_execution(ticket, item_id, n, reason) for item_id, n in refs]
    if last is not None and last.get("next") is None:
        return []  # the branch ended (its last step, bail, or setNextRequest(null))
    key = f"{branch.key}:{number}"
    reason = _why_missing(key, progress, ticket)
    if branch.dynamic:
        cursor = (last or {}).get("next") or {"index": 0, "iteration": 0}
        item_id = _dynamic_item(ticket, int(cursor.get("index", 0)))
        refs = [(item_id, int(cursor.get("iteration", 0)))]
    else:
        refs = [(ref.item_id, ref.iteration) for ref in branch.steps[number:]]
    return [_missing_execution(ticket, item_id, n, reason) for item_id, n in refs]


def _missing_execution(ticket: RunTicket, item_id: str, iteration: int, reason: str) -> Execution:
    execution = Execution(
        id=0, item_id=item_id, item_name=_item_name(ticket, item_id), iteration=iteration
    )
    execution.errors.append(ScriptError("request", "RunIncomplete", reason))
    return execution


def _why_missing(key: str, progress: dict[str, Any], ticket: RunTicket) -> str:
    started_at = (parse_iso(ticket.started_at) or utc_now()).timestamp()
    # Until the deadline, or until now for a run ended early (its caller stopped waiting).
    waited = max(int(min(ticket.deadline, time.time()) - started_at), 0)
    started = progress.get(f"{key}:started")
    if isinstance(started, dict):
        sent = progress.get(f"{key}:sent")
        what = f"after sending it ({sent})" if sent else "before sending it"
        return (
            f"worker {started.get('worker')} (queue {started.get('queue')}) took this request"
            f" and gave no result {what} within {waited} s"
        )
    queue = progress.get(f"{key}:queue") or ticket.queues.get(key) or "its queue"
    return f"no worker consumed {queue} within {waited} s"


def _dynamic_item(ticket: RunTicket, index: int) -> str:
    items = [item_id for item_id, _name in ticket.items]
    return items[index] if 0 <= index < len(items) else (items[0] if items else "")


def _item_name(ticket: RunTicket, item_id: str) -> str:
    return next((name for known, name in ticket.items if known == item_id), item_id)


def _merged(initial: JSON, states: dict[str, JSON], plan: Plan, scope: str) -> list[JSON]:
    merged: dict[str, JSON] = {}
    for entry in initial.get(scope) or []:
        merged[str(entry.get("key"))] = entry
    for branch in plan.branches:
        for entry in (states.get(branch.key) or {}).get(scope) or []:
            merged[str(entry.get("key"))] = entry
    return list(merged.values())


def _masked_scripts(collection: JSON | None, states: dict[str, JSON]) -> list[list[Any]]:
    """Script lines of the collection that hold a secret the run knew, masked.

    A waiter (``pmrunner run --distributed``) has the collection but not the
    secrets scripts set; with these its reports mask what a local run's do.
    """
    if collection is None:
        return []
    return masked_script_lines(collection, state_secrets(states.values()))


def _masked(values: list[JSON]) -> list[JSON]:
    return [
        {**entry, "value": MASK} if entry.get("type") == "secret" else entry for entry in values
    ]
