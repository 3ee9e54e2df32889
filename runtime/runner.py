"""Run a whole collection locally: iterations, order, setNextRequest, bail, delays.

This is what ``pmrunner run`` does; a distributed run executes the same
``Step.run_item`` in Celery tasks, with the flow decided by its planner.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass

from runtime.events import NullListener, RunListener
from runtime.http_client import HttpClient
from runtime.loading import VariableFile, row_for_iteration
from runtime.model import Collection, Item
from runtime.options import RunOptions
from runtime.results import JSON, Execution, Run, ScriptError, utc_now
from runtime.sandbox.pool import scripts_of_run
from runtime.state import RunState, initial_state, iteration_count
from runtime.step import Step


@dataclass
class _Cursor:
    """Where the run is: the item sequence, the position in it, executions so far."""

    items: list[Item]
    index: int = 0
    executions: int = 0

    def jump(self, target: str) -> bool:
        """Move to the item with that id, else that name; False when there is none."""
        index = find_item(self.items, target)
        if index is None:
            return False
        self.index = index
        return True


def find_item(items: list[Item], target: str) -> int | None:
    """Where ``setNextRequest(target)`` goes: the item with that id, else that name."""
    for index, item in enumerate(items):
        if item.id == target:
            return index
    for index, item in enumerate(items):
        if item.name == target:
            return index
    return None


def run_collection(
    collection: Collection,
    *,
    environment: VariableFile | None = None,
    globals: VariableFile | None = None,
    iteration_data: list[dict[str, object]] | None = None,
    options: RunOptions | None = None,
    listener: RunListener | None = None,
    cookies: list[JSON] | None = None,
) -> Run:
    """Run ``collection`` and return the finished ``Run``.

    Parameters:
        collection: the parsed collection.
        environment: environment variables (``-e``), already merged with ``--env-var``.
        globals: global variables (``-g``), already merged with ``--global-var``.
        iteration_data: rows of iteration data (``-d``).
        options: run options; ``RunOptions()`` by default.
        listener: follows the run (reporters).
        cookies: the cookie jar to start with, in ``runtime.cookies``' JSON form
            (newman's ``--cookie-jar``).

    The returned run holds the final environment, globals, collection
    variables and cookies, for exports.
    """
    options = options or RunOptions()
    listener = listener or NullListener()
    count = iteration_count(options, iteration_data)
    run = Run(
        collection_id=collection.id,
        collection_name=collection.name,
        iterations=count,
        environment_name=environment.name if environment else None,
    )
    state = initial_state(collection, environment, globals, count)
    items = collection.select(list(options.folders))
    client = HttpClient(options)
    if cookies:
        client.import_cookies(cookies)
    listener.run_started(run)
    try:
        with scripts_of_run(uuid.uuid4().hex, options.script_limits) as scripts:
            scripts.wait_for_boots()  # see ContextPool.boot_ahead
            step = Step(collection, options, client, scripts)
            _iterate(run, step, state, items, iteration_data or [], listener)
    finally:
        run.cookies = client.export_cookies()
        client.close()
        run.finished_at = utc_now()
        run.environment = state.environment
        run.globals = state.globals
        run.collection_variables = state.collection_variables
    listener.run_finished(run)
    return run


def _iterate(
    run: Run,
    step: Step,
    state: RunState,
    items: list[Item],
    rows: list[dict[str, object]],
    listener: RunListener,
) -> None:
    options = step.options
    deadline = time.monotonic() + options.timeouts.run / 1000 if options.timeouts.run else None
    executed = 0
    for iteration in range(run.iterations):
        state.iteration = iteration
        state.data = row_for_iteration(rows, iteration)
        listener.iteration_started(run, iteration)
        cursor = _Cursor(items)
        while cursor.index < len(items):
            if deadline is not None and time.monotonic() > deadline:
                message = f"run timed out after {options.timeouts.run} ms"
                run.run_errors.append(ScriptError("run", "TimeoutError", message))
                return
            if executed and options.delay_request_ms:
                time.sleep(options.delay_request_ms / 1000)
            item = items[cursor.index]
            executed += 1
            execution = Execution(
                id=executed,
                item_id=item.id,
                item_name=item.name,
                iteration=iteration,
                path=item.path,
            )
            listener.execution_started(run, execution)
            result = step.run_item(item, state, execution, position=cursor.index)
            run.executions.append(execution)
            listener.execution_finished(run, execution)
            if options.bail and execution.failed:
                run.bailed = True
                return
            if not result.has_next_request:
                cursor.index += 1
            elif result.next_request is None or not cursor.jump(result.next_request):
                break
