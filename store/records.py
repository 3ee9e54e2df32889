"""What the run registry hands out: a run's ticket, a step's start and its holder."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

JSON = dict[str, Any]


@dataclass
class RunTicket:
    """What every task of a run needs to know about it (JSON-safe).

    Parameters:
        run_id: the run's id.
        collection_digest: the cached collection version's key.
        collection_id / collection_name: for reports.
        plan: the planner's branches (``Plan.to_dict()``).
        options: ``RunOptions.to_dict()``.
        iterations: iteration count; iteration_data: the data rows.
        deadline: Unix time after which the sweeper ends the run.
        source: how the run was started (monitor, api, schedule, collection_runner, newman).
        monitor: the monitor's uid and name, for monitor runs.
        webhooks: URLs the report is posted to.
        network_pin: a network the monitor pins every request to.
        networks: the routing rules in force when the run started, so every
            worker routes the same way without a copy of the networks file.
        resend_unsafe: whether a sent POST, PUT, PATCH or DELETE whose worker
            was lost is sent again (None: the runner's ``PMRUNNER_RESEND_UNSAFE``).
    """

    run_id: str
    collection_digest: str
    collection_id: str
    collection_name: str
    plan: JSON
    options: JSON
    iterations: int
    deadline: float
    started_at: str
    source: str = "api"
    environment_id: str | None = None
    environment_name: str | None = None
    iteration_data: list[JSON] = field(default_factory=list)
    monitor: JSON | None = None
    webhooks: list[str] = field(default_factory=list)
    network_pin: str | None = None
    networks: JSON = field(default_factory=dict)  # the networks file's content, for routing
    queues: JSON = field(default_factory=dict)  # step key -> queue it was sent to
    items: list[list[str]] = field(default_factory=list)  # [id, name] in collection order
    resend_unsafe: bool | None = None

    def to_json(self) -> str:
        # Every field holds plain JSON: no deep copy (asdict) needed.
        return json.dumps(vars(self))

    @classmethod
    def from_json(cls, text: str | bytes) -> RunTicket:
        return cls(**json.loads(text))


@dataclass
class StepStart:
    """What ``begin_step`` found for a step.

    Parameters:
        outcome: ``run`` (this delivery runs it), ``final`` (the run ended),
            ``finished`` (an earlier delivery recorded it), ``busy`` (another
            delivery holds it; ``started`` says where).
        ticket: the run's ticket, when asked for.
        attempt: the claims of this step so far (2+: it was sent again).
        result: the earlier result (``finished``).
        state: the branch's state (or the run's initial state).
        note: why the step was sent again, when it was.
        started: where the holding delivery runs (``busy``).
    """

    outcome: str
    ticket: RunTicket | None = None
    attempt: int = 0
    result: JSON | None = None
    state: JSON = field(default_factory=dict)
    note: str = ""
    started: JSON = field(default_factory=dict)


@dataclass(frozen=True)
class StepHolder:
    """Which delivery of a step is running, and where.

    Parameters:
        worker: the worker's node name.
        task_id: the Celery task id of the delivery.
        queue: the queue it came from.
        entry: the worker's record of the step (``worker_steps`` field value).
    """

    worker: str
    task_id: str
    queue: str
    entry: JSON


def entry_field(run_id: str, step_key: str) -> str:
    """The field of a step in its worker's ``worker_steps`` hash."""
    return f"{run_id}|{step_key}"
