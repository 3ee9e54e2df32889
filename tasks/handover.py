"""Finishing a step on another network: when a pre-request script changes the request's host.

A step is routed by its request's host as known before it runs. Its own
pre-request scripts may change the URL (``pm.request.url = ...``, or a
variable the URL reads); then the request must still be sent from the
network that reaches the new host. The worker that ran the scripts keeps the
step's state in the registry (``save_prepared``) and hands the step, marked
``prepared``, to the right queue; the worker there sends the request and runs
the test scripts, exactly once each.
"""

from __future__ import annotations

from dataclasses import asdict, fields
from typing import Any

from runtime.results import Execution
from runtime.state import RunState
from runtime.step import Prepared
from tasks.context import Services

PREPARED = "prepared"  # the cursor flag of a step whose pre-request scripts already ran
JSON = dict[str, Any]


def save_prepared(
    services: Services,
    run_id: str,
    step_key: str,
    prepared: Prepared,
    state: RunState,
    execution: Execution,
) -> None:
    """Keep what the pre-request scripts left, for the worker that finishes the step."""
    record = {
        "prepared": prepared.to_dict(),
        "state": asdict(state),
        "execution": execution.to_dict(),
    }
    services.registry.save_prepared(run_id, step_key, record)


def resume_prepared(
    services: Services, run_id: str, step_key: str, state: RunState, execution: Execution
) -> Prepared:
    """Restore a prepared step into ``state`` and ``execution``; return its request.

    ``execution`` keeps where it runs now (worker, network); its attempt
    does not count the hand-over itself as a retry.

    Raises:
        LookupError: nothing was kept for the step (its run's state expired).
    """
    record = services.registry.prepared(run_id, step_key)
    if record is None:
        raise LookupError(f"the state of step {step_key} after its pre-request scripts is gone")
    saved_state = RunState(**record["state"])
    for field in fields(RunState):
        setattr(state, field.name, getattr(saved_state, field.name))
    saved = Execution.from_dict(record["execution"])
    saved.worker, saved.network = execution.worker, execution.network
    saved.attempt = max(execution.attempt - 1, 1)
    for field in fields(Execution):
        setattr(execution, field.name, getattr(saved, field.name))
    return Prepared.from_dict(record["prepared"])
