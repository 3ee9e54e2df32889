"""Starting a distributed run: plan it, register it, send its chord.

``start_run`` is what the HTTP API and ``pmrunner run --distributed`` call;
the scheduler prepares runs from templates ahead of their slots. A run
caches its collection in Redis by version (tasks carry its digest, not the
collection), is registered with its deadline, and sends one chord: the
first step of every branch of the plan, each to its network's queue, with
``finalize_run`` as callback. All of it is one batch of writes
(``store.launch``), applied in one round trip and before any worker can see
a message, since the registration comes first in the batch.
"""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from celery import Celery

from runtime.loading import VariableFile, load_collection
from runtime.options import RunOptions, options_to_dict
from runtime.results import iso, utc_now
from runtime.state import initial_state, iteration_count
from scheduler.planner import Plan, plan_run
from store import RunTicket
from store.collections import digest_of
from store.launch import Launch, Launcher
from tasks.context import Services
from tasks.egress import egress_sections
from tasks.messages import EXECUTE_REQUEST, describe, step_queue
from tasks.publish import StepMessage, chord_ops
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
class RunTemplate:
    """What every run of one collection version, environment and options shares.

    Parsing, planning, routing the first steps and sealing the collection and
    the initial state are done once here; :meth:`prepare` adds what is
    particular to one run (its id, times, monitor and webhooks). The
    scheduler keeps templates while their inputs do not change, so a
    monitor's run costs the scheduler only that last step.
    """

    services: Services
    digest: str
    sealed_collection: str
    collection_id: str
    collection_name: str
    plan: JSON
    options: JSON
    iterations: int
    environment_id: str | None
    environment_name: str | None
    iteration_data: list[JSON]
    network_pin: str | None
    networks: JSON
    items: list[list[str]]
    first_steps: list[tuple[str, JSON, str, str]]  # branch key, cursor, queue, item name
    sealed_state: str
    deadline_seconds: float
    # Names the sealed state in a batch of launches (unique to this template).
    state_blob: str = field(default_factory=lambda: f"state:{uuid.uuid4().hex}")

    def prepare(
        self,
        run_id: str,
        *,
        source: str = "api",
        monitor: JSON | None = None,
        webhooks: list[str] | None = None,
        start_at: float | None = None,
        resend_unsafe: bool | None = None,
    ) -> PreparedRun:
        """One run of this template, ready to be sent (nothing is written yet).

        Parameters:
            run_id: the run's id.
            source / monitor / webhooks / resend_unsafe: as in :class:`RunRequest`.
            start_at: the Unix time the run will be sent (its start and deadline
                count from there); now when None.
        """
        services = self.services
        ticket = RunTicket(
            run_id=run_id,
            collection_digest=self.digest,
            collection_id=self.collection_id,
            collection_name=self.collection_name,
            plan=self.plan,
            options=self.options,
            iterations=self.iterations,
            deadline=(start_at or time.time()) + self.deadline_seconds,
            started_at=iso(_moment(start_at)) or "",
            source=source,
            environment_id=self.environment_id,
            environment_name=self.environment_name,
            iteration_data=self.iteration_data,
            monitor=monitor,
            webhooks=list(webhooks or []),
            network_pin=self.network_pin,
            networks=self.networks,
            queues={f"{key}:0": queue for key, _, queue, _ in self.first_steps},
            items=self.items,
            resend_unsafe=resend_unsafe,
        )
        steps = [
            StepMessage(
                EXECUTE_REQUEST, (run_id, key, 0, cursor), queue, describe(run_id, key, 0, name)
            )
            for key, cursor, queue, name in self.first_steps
        ]
        registry = services.registry
        collection_blob = registry.keys.collection(self.digest)
        state_blob = self.state_blob
        ops = registry.hold_collection_ops(self.digest, run_id, self.deadline_seconds + 60)
        ops += registry.register_ops(ticket, state_blob)
        ops += chord_ops(services.app, run_id, steps, services.settings.control_queue)
        blobs = {collection_blob: self.sealed_collection, state_blob: self.sealed_state}
        launch = Launch(ops, blobs)
        launch.encoded  # noqa: B018 (encoded now, while preparing, not when sent)
        return PreparedRun(services, run_id, launch)


@dataclass
class PreparedRun:
    """A run planned, its writes and messages built, nothing sent (see :func:`prepare_run`)."""

    services: Services
    run_id: str
    launch: Launch

    def send(self) -> str:
        """Register the run and send its chord, in one round trip; its id."""
        launcher(self.services).launch([(self.launch, None)])
        return self.run_id


def launcher(services: Services) -> Launcher:
    """The :class:`~store.launch.Launcher` of the services' Redis client (one per client)."""
    client = services.registry.redis
    with _launchers_lock:
        found = _launchers.get(id(client))
        if found is None:
            found = _launchers[id(client)] = Launcher(client)
        return found


_launchers: dict[int, Launcher] = {}
_launchers_lock = threading.Lock()


def start_run(app: Celery, request: RunRequest) -> str:
    """Plan, register and send a run; return its id."""
    return prepare_run(app, request).send()


def prepare_run(app: Celery, request: RunRequest, start_at: float | None = None) -> PreparedRun:
    """Plan a run and build its writes, leaving its sending for later.

    Parameters:
        app: the Celery app.
        request: the run.
        start_at: the Unix time the run will be sent (its start and deadline
            count from there); now when None.
    """
    return build_template(app, request).prepare(
        request.run_id or uuid.uuid4().hex,
        source=request.source,
        monitor=request.monitor,
        webhooks=request.webhooks,
        start_at=start_at,
        resend_unsafe=request.resend_unsafe,
    )


def build_template(app: Celery, request: RunRequest) -> RunTemplate:
    """Parse, plan and route ``request``'s collection: what its runs share.

    The run-specific parts of ``request`` (run id, source, monitor,
    webhooks, resend_unsafe) are not used; see :meth:`RunTemplate.prepare`.
    """
    services = Services.of(app)
    settings = services.settings
    collection = load_collection(request.collection)
    items = collection.select(list(request.options.folders))
    count = iteration_count(request.options, request.iteration_data)
    state = initial_state(collection, request.environment, request.globals, count)
    plan = plan_run(items, count, state.resolver().resolve)
    networks = NetworkMap.load(settings.networks_file, settings.default_network)
    deadline = request.deadline_seconds or settings.run_deadline
    if request.options.timeouts.run:
        deadline = min(deadline, request.options.timeouts.run / 1000 + 30)
    text, digest = digest_of(collection.raw)
    first_steps = _first_steps(plan, items, state, networks, settings, request.network_pin)
    return RunTemplate(
        services=services,
        digest=digest,
        sealed_collection=services.registry.seal_collection(text),
        collection_id=collection.id,
        collection_name=collection.name,
        plan=plan.to_dict(),
        options=options_to_dict(request.options),
        iterations=count,
        environment_id=request.environment.id if request.environment else None,
        environment_name=request.environment.name if request.environment else None,
        iteration_data=list(request.iteration_data),
        network_pin=request.network_pin,
        networks={**_networks_dict(networks), "egress": egress_sections(settings.networks_file)},
        items=[[item.id, item.name] for item in items],
        first_steps=first_steps,
        sealed_state=services.registry.seal_state(asdict(state)),
        deadline_seconds=deadline,
    )


def _moment(at: float | None) -> datetime:
    return utc_now() if at is None or at <= time.time() else datetime.fromtimestamp(at, UTC)


def _first_steps(
    plan: Plan,
    items: list[Any],
    state: Any,
    networks: NetworkMap,
    settings: Settings,
    pin: str | None,
) -> list[tuple[str, JSON, str, str]]:
    """Each branch's first step: its key, cursor, queue and item name."""
    by_id = {item.id: item for item in items}
    steps = []
    for branch in plan.branches:
        first = branch.steps[0]
        item = by_id[first.item_id]
        cursor: JSON = {"index": 0}
        if branch.dynamic:
            cursor["iteration"] = 0
        state.iteration = first.iteration
        queue = step_queue(item, state, networks, settings, pin=pin)
        steps.append((branch.key, cursor, queue, item.name))
    state.iteration = 0
    return steps


def _networks_dict(networks: NetworkMap) -> JSON:
    return {
        "default": networks.default,
        "networks": {
            rule.name: [str(c) for c in rule.cidrs] + list(rule.patterns) for rule in networks.rules
        },
    }
