"""Starting a distributed run: plan it, register it, send its chord.

``start_run`` is what the scheduler, the HTTP API and ``pmrunner run
--distributed`` call. It caches the collection in Redis by version (tasks
carry its digest, not the collection), registers the run with its deadline
before anything is sent, and sends one chord: the first step of every branch
of the plan, each to its network's queue, with ``finalize_run`` as callback.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from celery import Celery, chord

from runtime.loading import VariableFile, load_collection
from runtime.options import RunOptions, options_to_dict
from runtime.results import iso, utc_now
from runtime.state import initial_state, iteration_count
from scheduler.planner import Plan, plan_run
from store import RunTicket
from tasks.context import Services
from tasks.egress import egress_sections
from tasks.messages import EXECUTE_REQUEST, FINALIZE_RUN, describe, step_queue
from worker.routing import NetworkMap
from worker.settings import Settings

JSON = dict[str, Any]


@dataclass
class RunRequest:
    """Everything needed to start one run.

    Parameters:
        collection: the collection JSON (v2.x, or wrapped as the Postman API returns it).
        environment / globals: variables, already merged with overrides.
        iteration_data: data rows.
        options: run options (timeouts, TLS, iterations, folders ...).
        source: how the run was started, as the Collection Runs API says it
            (monitor, api, schedule, collection_runner, newman, webhook).
        monitor: ``{"uid", "name"}`` for monitor runs.
        webhooks: URLs that get the report.
        network_pin: run every request on this network.
        deadline_seconds: how long the run may take (default: the settings').
        resend_unsafe: send a sent POST, PUT, PATCH or DELETE again when its
            worker is lost (None: the runner's ``PMRUNNER_RESEND_UNSAFE``).
    """

    collection: JSON
    environment: VariableFile | None = None
    globals: VariableFile | None = None
    iteration_data: list[JSON] = field(default_factory=list)
    options: RunOptions = field(default_factory=RunOptions)
    source: str = "api"
    monitor: JSON | None = None
    webhooks: list[str] = field(default_factory=list)
    network_pin: str | None = None
    deadline_seconds: float | None = None
    resend_unsafe: bool | None = None
    run_id: str | None = None


@dataclass
class PreparedRun:
    """A run planned and registered, its messages not sent yet (see :func:`prepare_run`)."""

    app: Celery
    run_id: str
    header: list[Any]
    callback: Any

    def send(self) -> str:
        """Send the run's chord; its id."""
        if self.header:
            chord(self.header, self.callback, app=self.app).apply_async()
        else:
            self.callback.apply_async()
        return self.run_id


def start_run(app: Celery, request: RunRequest) -> str:
    """Plan, register and send a run; return its id."""
    return prepare_run(app, request).send()


def prepare_run(app: Celery, request: RunRequest, start_at: float | None = None) -> PreparedRun:
    """Plan and register a run, leaving only its sending for later.

    The scheduler prepares the runs of a slot just before the slot, so that
    at the slot only the messages are sent.

    Parameters:
        app: the Celery app.
        request: the run.
        start_at: the Unix time the run will be sent (its start and deadline
            count from there); now when None.
    """
    services = Services.of(app)
    settings = services.settings
    collection = load_collection(request.collection)
    raw = collection.raw
    items = collection.select(list(request.options.folders))
    count = iteration_count(request.options, request.iteration_data)
    state = initial_state(collection, request.environment, request.globals, count)
    plan = plan_run(items, count, state.resolver().resolve)
    networks = NetworkMap.load(settings.networks_file, settings.default_network)
    run_id = request.run_id or uuid.uuid4().hex
    deadline = request.deadline_seconds or settings.run_deadline
    if request.options.timeouts.run:
        deadline = min(deadline, request.options.timeouts.run / 1000 + 30)
    ticket = RunTicket(
        run_id=run_id,
        collection_digest=services.registry.cache_collection(raw, run_id, deadline + 60),
        collection_id=collection.id,
        collection_name=collection.name,
        plan=plan.to_dict(),
        options=options_to_dict(request.options),
        iterations=count,
        deadline=(start_at or time.time()) + deadline,
        started_at=iso(_moment(start_at)) or "",
        source=request.source,
        environment_id=request.environment.id if request.environment else None,
        environment_name=request.environment.name if request.environment else None,
        iteration_data=list(request.iteration_data),
        monitor=request.monitor,
        webhooks=list(request.webhooks),
        network_pin=request.network_pin,
        networks={**_networks_dict(networks), "egress": egress_sections(settings.networks_file)},
        items=[[item.id, item.name] for item in items],
        resend_unsafe=request.resend_unsafe,
    )
    header = _first_steps(app, ticket, plan, items, state, networks, settings)
    ticket.queues = {f"{sig.args[1]}:0": sig.options["queue"] for sig in header}
    services.registry.register(ticket, asdict(state))
    callback = app.signature(FINALIZE_RUN, (run_id,), queue=settings.control_queue, immutable=True)
    return PreparedRun(app, run_id, header, callback)


def _moment(at: float | None) -> datetime:
    return utc_now() if at is None or at <= time.time() else datetime.fromtimestamp(at, UTC)


def _first_steps(
    app: Celery,
    ticket: RunTicket,
    plan: Plan,
    items: list[Any],
    state: Any,
    networks: NetworkMap,
    settings: Settings,
) -> list[Any]:
    by_id = {item.id: item for item in items}
    header = []
    for branch in plan.branches:
        first = branch.steps[0]
        item = by_id[first.item_id]
        cursor: JSON = {"index": 0}
        if branch.dynamic:
            cursor["iteration"] = 0
        state.iteration = first.iteration
        queue = step_queue(item, state, networks, settings, pin=ticket.network_pin)
        header.append(
            app.signature(
                EXECUTE_REQUEST,
                (ticket.run_id, branch.key, 0, cursor),
                queue=queue,
                argsrepr=describe(ticket.run_id, branch.key, 0, item.name),
                kwargsrepr="{}",
            )
        )
    state.iteration = 0
    return header


def _networks_dict(networks: NetworkMap) -> JSON:
    return {
        "default": networks.default,
        "networks": {
            rule.name: [str(c) for c in rule.cidrs] + list(rule.patterns) for rule in networks.rules
        },
    }
