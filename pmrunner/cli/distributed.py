"""``pmrunner run --distributed``: the run goes through the broker to the workers.

Inputs are loaded and checked here, as for a local run. The run is then
planned and sent with ``tasks.dispatch.start_run``, and this process waits for
its report, printing each finished request and any queue no worker consumes
(``pmrunner.cli.progress``). The finished run is replayed into the same reporters a local run
feeds as it goes, so the output, the exports and the exit code are the same.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Any, TextIO

import click

from pmrunner.cli.exports import write_exports
from pmrunner.cli.inputs import RunInputs, load_inputs
from pmrunner.cli.options import RunSettings
from pmrunner.cli.output import reporters_for
from pmrunner.cli.progress import RunWatch
from pmrunner.errors import PmrunnerError
from runtime.events import Listeners, RunListener
from runtime.options import RunOptions
from runtime.results import JSON, Run

if TYPE_CHECKING:
    from runtime.loading import VariableFile
    from tasks.context import Services
    from tasks.dispatch import RunRequest
    from worker.settings import Settings

# start_run gives a run with --timeout this much longer before the sweeper
# reports it; waiting as long means a run that hangs still gets its report.
SWEEP_MARGIN_SECONDS = 30.0
REDIS_CHECK_SECONDS = 5.0
# Pings of a Redis that is not up yet: this far apart at most.
REDIS_PING_INTERVAL_MAX = 1.0


def execute_distributed(settings: RunSettings, stream: TextIO) -> Run:
    """Load the inputs, run the collection on the workers, report it, write exports.

    Parameters:
        settings: the run command's settings; ``wait_seconds`` bounds the wait.
        stream: where the cli reporter prints.

    Raises ``PmrunnerError`` when Redis cannot be reached or no report came in time.
    """
    inputs = load_inputs(settings)
    finished, masked_scripts = run_on_workers(settings, inputs)
    listener = Listeners(
        reporters_for(settings, with_masked_scripts(inputs, masked_scripts), stream)
    )
    run = replay(finished, listener)
    write_exports(settings, inputs, with_input_secrets(run, inputs))
    return run


def with_masked_scripts(inputs: RunInputs, masked_scripts: list[Any]) -> RunInputs:
    """The inputs with the script lines that held the run's secrets masked, for reporters."""
    if not masked_scripts:
        return inputs
    from runtime.loading import load_collection
    from runtime.masking import with_masked_script_lines

    masked = with_masked_script_lines(inputs.collection.raw, masked_scripts)
    return replace(inputs, collection=load_collection(masked))


def run_on_workers(settings: RunSettings, inputs: RunInputs) -> tuple[Run, list[Any]]:
    """Send the run through the broker and wait for its report.

    Returns the run the report holds, and the report's masked script lines.
    """
    from tasks.dispatch import RunRequest

    worker_settings = broker_settings()
    request = RunRequest(
        collection=inputs.collection.raw,
        environment=inputs.environment,
        globals=inputs.globals,
        iteration_data=list(inputs.iteration_data or []),
        options=settings.options,
        source="collection_runner",
        resend_unsafe=settings.resend_unsafe,
    )
    wait = settings.wait_seconds or default_wait(settings.options, worker_settings)
    report = dispatch_and_wait(worker_settings, request, wait)
    return Run.from_dict(report["run"]), list(report.get("maskedScripts") or [])


def broker_settings() -> Settings:
    """The workers' settings (``PMRUNNER_*``), once Redis answered a ping.

    A Redis that does not answer yet is waited for up to
    ``PMRUNNER_REDIS_RETRY_SECONDS``, as the wait for the report rides out an
    outage; one line on stderr says so.
    """
    from worker.settings import Settings

    settings = Settings.from_env()
    wait_for_redis(settings.redis_url, settings.redis_retry_seconds, _tell)
    return settings


def _tell(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def shown_url(url: str) -> str:
    """A Redis URL fit for messages: its password hidden."""
    from kombu.utils.url import maybe_sanitize_url

    return str(maybe_sanitize_url(url))


def wait_for_redis(url: str, patience: float, tell: Callable[[str], None]) -> None:
    """Ping Redis until it answers, for up to ``patience`` seconds.

    A refused or timed-out connection (Redis restarting, still loading its
    data) is tried again with backoff, and ``tell`` hears one line about it;
    a malformed URL, a refused password or anything else fails at once.

    Raises ``PmrunnerError`` naming Redis when it did not answer in time.
    """
    import redis

    try:
        client = redis.Redis.from_url(
            url, socket_connect_timeout=REDIS_CHECK_SECONDS, socket_timeout=REDIS_CHECK_SECONDS
        )
    except ValueError as error:
        raise PmrunnerError(f"PMRUNNER_REDIS_URL {shown_url(url)!r}: {error}") from None
    deadline, pause, told = time.monotonic() + patience, 0.1, False
    try:
        while True:
            try:
                client.ping()
                return
            except redis.AuthenticationError as error:
                raise PmrunnerError(unreachable(url, error)) from None
            except (redis.ConnectionError, redis.TimeoutError) as error:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise PmrunnerError(unreachable(url, error)) from None
                if not told:
                    tell(waiting_line(url, error, patience))
                    told = True
                time.sleep(min(pause, left))
                pause = min(pause * 2, REDIS_PING_INTERVAL_MAX)
            except redis.RedisError as error:
                raise PmrunnerError(unreachable(url, error)) from None
    finally:
        client.close()


def waiting_line(url: str, error: Exception, patience: float) -> str:
    reason = " ".join(str(error).split()) or type(error).__name__
    return (
        f"waiting for Redis at {shown_url(url)} ({reason}); trying for up to {patience:g} s"
        " (PMRUNNER_REDIS_RETRY_SECONDS)"
    )


def unreachable(url: str, error: Exception) -> str:
    reason = " ".join(str(error).split()) or type(error).__name__
    return (
        f"cannot reach Redis at {shown_url(url)} ({reason}); set PMRUNNER_REDIS_URL"
        " to the broker the workers use"
    )


def default_wait(options: RunOptions, settings: Settings) -> float:
    """Seconds to wait for a report: the run's timeout, else the run deadline, plus a margin."""
    if options.timeouts.run:
        return options.timeouts.run / 1000 + SWEEP_MARGIN_SECONDS
    return settings.run_deadline + SWEEP_MARGIN_SECONDS


def dispatch_and_wait(settings: Settings, request: RunRequest, wait: float) -> JSON:
    """Start the run and wait up to ``wait`` seconds for its report.

    Raises ``PmrunnerError`` naming the run and the queues to consume when no
    report comes, and naming Redis when it stops answering.
    """
    import redis
    from kombu.exceptions import OperationalError

    from tasks.context import Services
    from tasks.dispatch import start_run
    from worker.app import create_app

    app = create_app(settings)
    try:
        run_id = start_run(app, request)
        services = Services.of(app)
        watch = RunWatch(services, run_id, lambda line: click.echo(line, err=True))
        try:
            report = watch.wait(wait)
        except KeyboardInterrupt:
            watch.abandon()
            raise
        if report is None:
            # Name the queues found to have no worker, not those a live one consumes.
            queues = sorted(watch.unconsumed) or awaited_queues(services, run_id)
            removed = watch.abandon()
            raise PmrunnerError(no_report(run_id, wait, queues, removed))
    except (redis.RedisError, OperationalError) as error:
        raise PmrunnerError(unreachable(settings.redis_url, error)) from None
    return report


def awaited_queues(services: Services, run_id: str) -> list[str]:
    """The queues a run's first steps and its finalizer were sent to."""
    settings = services.settings
    queues = [settings.queue_for(settings.default_network)]
    ticket = services.registry.ticket(run_id)
    for queue in (ticket.queues if ticket else {}).values():
        if queue not in queues:
            queues.append(queue)
    return queues


def no_report(run_id: str, wait: float, queues: list[str], removed: int = 0) -> str:
    names = ",".join(queues)
    messages = "message" if removed == 1 else "messages"
    ended = f"; the run was ended and its {removed} waiting {messages} removed" if removed else ""
    return (
        f"run {run_id} has no report after {wait:g} s; is a worker consuming {names}?"
        f" (for example: celery -A worker worker -Q {names}){ended}"
    )


def replay(finished: Run, listener: RunListener) -> Run:
    """Feed a finished run to ``listener`` in the order a local run would have.

    A fresh ``Run`` grows execution by execution, as the runner's does, so
    reporters see the same calls with the same state. Returns that run.
    """
    run = Run(
        collection_id=finished.collection_id,
        collection_name=finished.collection_name,
        iterations=finished.iterations,
        started_at=finished.started_at,
        environment_name=finished.environment_name,
    )
    listener.run_started(run)
    announced = -1
    for execution in finished.executions:
        announced = announce_iterations(run, listener, announced, execution.iteration)
        listener.execution_started(run, execution)
        run.executions.append(execution)
        listener.execution_finished(run, execution)
    if not finished.bailed and not finished.run_errors:
        announce_iterations(run, listener, announced, finished.iterations - 1)
    run.finished_at = finished.finished_at
    run.environment = finished.environment
    run.globals = finished.globals
    run.run_errors = finished.run_errors
    run.bailed = finished.bailed
    listener.run_finished(run)
    return run


def announce_iterations(run: Run, listener: RunListener, announced: int, upto: int) -> int:
    """``iteration_started`` for each iteration after ``announced`` up to ``upto``."""
    for iteration in range(announced + 1, upto + 1):
        listener.iteration_started(run, iteration)
    return max(announced, upto)


def with_input_secrets(run: Run, inputs: RunInputs) -> Run:
    """The run with the masked values of secret variables taken from the inputs.

    Stored reports mask secrets, but an export is the next run's input and
    must hold the real value; a secret the run changed keeps its input value.
    """
    return replace(
        run,
        environment=unmasked(run.environment, inputs.environment),
        globals=unmasked(run.globals, inputs.globals),
    )


def unmasked(values: list[JSON], source: VariableFile | None) -> list[JSON]:
    from tasks.finalize import MASK

    originals = {v.get("key"): v.get("value") for v in (source.values if source else [])}
    return [
        {**v, "value": originals[v.get("key")]}
        if v.get("value") == MASK and v.get("type") == "secret" and v.get("key") in originals
        else v
        for v in values
    ]
