"""Where a branch goes next: the successor step's cursor, queue and signature.

After a step, its branch goes on to the next item (or, in a dynamic branch,
wherever ``setNextRequest`` points), routed to the queue of the network that
can reach that item's host, decided with the variables the step just left.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from runtime.runner import find_item
from runtime.state import RunState
from tasks.context import RunContext, Services
from tasks.messages import EXECUTE_REQUEST, describe, step_queue

JSON = dict[str, Any]


def dynamic_next(
    context: RunContext, cursor: JSON, has_next: bool, target: str | None
) -> JSON | None:
    """Postman's flow: the next item, or a jump, or the next iteration."""
    items = context.selected_items()
    index, iteration = int(cursor["index"]), int(cursor.get("iteration", 0))
    if not has_next:
        index += 1
    else:
        jump = find_item(items, target) if target is not None else None
        index = jump if jump is not None else len(items)
    if index >= len(items):
        index, iteration = 0, iteration + 1
        if iteration >= context.ticket.iterations:
            return None
    return {"index": index, "iteration": iteration}


def successor_of(
    services: Services,
    context: RunContext,
    branch_key: str,
    number: int,
    cursor: JSON | None,
    state: RunState,
) -> Any:
    """The next step's signature, routed with the state the step left; None at the end."""
    if cursor is None:
        return None
    branch = context.branch(branch_key)
    item_id, iteration = context.position(branch, cursor)
    routing_state = RunState(**{**asdict(state), "iteration": iteration})
    routing_state.data = data_row(context, iteration)
    item = context.item(item_id)
    queue = route_for(context, item, routing_state, services)
    return step_signature(services, context, branch_key, number + 1, {**cursor, "queue": queue})


def step_signature(
    services: Services, context: RunContext, branch_key: str, number: int, cursor: JSON
) -> Any:
    """The signature of step ``number`` at ``cursor`` (whose ``queue`` says where it goes)."""
    cursor = dict(cursor)
    queue = cursor.pop("queue")
    run_id = context.ticket.run_id
    item_id, _ = context.position(context.branch(branch_key), cursor)
    return services.app.signature(
        EXECUTE_REQUEST,
        (run_id, branch_key, number, cursor),
        queue=queue,
        argsrepr=describe(run_id, branch_key, number, context.item(item_id).name),
        kwargsrepr="{}",
    )


def route_for(
    context: RunContext,
    item: Any,
    state: RunState,
    services: Services,
    request: JSON | None = None,
) -> str:
    """The queue of ``item``'s step (``tasks.messages.step_queue``), with ``state``'s variables.

    ``request`` is the item's request as its pre-request scripts left it
    (default: as the collection has it).
    """
    return step_queue(
        item,
        state,
        context.networks,
        services.settings,
        pin=context.ticket.network_pin,
        request=request,
    )


def data_row(context: RunContext, iteration: int) -> JSON:
    rows = context.ticket.iteration_data
    if not rows:
        return {}
    return dict(rows[min(iteration, len(rows) - 1)])


def network_of(queue: str, services: Services) -> str | None:
    if queue.startswith("net."):
        return queue[4:]
    return services.settings.network
