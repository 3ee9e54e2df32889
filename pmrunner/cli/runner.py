"""``pmrunner runner start``: Postman CLI's runner command, on pmrunner's workers.

One process runs a Celery worker (threads pool) with the scheduler embedded:
it polls the monitor source (Postman, or a local ``monitors.yaml``), starts
each due run and executes the requests of the queues it consumes. With
``PMRUNNER_API_KEY`` set it also serves the HTTP API (``PMRUNNER_API_HOST``,
``PMRUNNER_API_PORT``). More
workers on other hosts (``celery -A worker worker -Q net.<name>``) take the
queues of their networks.

Settings come from ``PMRUNNER_*`` variables; the options override them. The
Postman API key is never printed: settings hide it from their repr, and
error messages name options, not values.
"""

from __future__ import annotations

import dataclasses
import logging
import signal
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import click

from pmrunner.cli.console import RunPrinter, monitor_lines, served_lines
from pmrunner.cli.options import existing_file
from pmrunner.cli.output import CommandError
from pmrunner.cli.stopping import announce_stop, quiet_stop_worker
from pmrunner.errors import ConfigurationError, PmrunnerError

if TYPE_CHECKING:
    from worker.settings import Settings

log = logging.getLogger("pmrunner.runner")

DEFAULT_METRICS_PORT = 9100
DEFAULT_CONCURRENCY = 32
CHILD_STOP_SECONDS = 10.0
SELECTION_HINT = (
    "(options: --monitor, --workspace, --marker, or --id to select monitors named [ID])"
)


def configured_settings(params: dict[str, Any]) -> Settings:
    """``Settings.from_env()`` with the options given on the command line over it.

    Options left out keep the environment's value; ``--metrics`` sets the
    metrics port, which is what turns the metrics server on.
    """
    from worker.settings import Settings

    settings = Settings.from_env()
    overrides: dict[str, Any] = {
        "postman_api_key": params["key"] or None,
        "runner_id": params["runner_id"] or None,
        "proxy": params["proxy"] or None,
        "postman_workspace": params["workspace"] or None,
        "postman_marker": params["marker"] or None,
        "monitors_file": existing_file("--monitors-file", params["monitors_file"]),
        "extra_ca_certs": existing_file("--ssl-extra-ca-certs", params["ssl_extra_ca_certs"]),
        "postman_monitors": tuple(params["monitors"]) or None,
        "metrics_port": params["metrics_port"] if params["metrics"] else None,
    }
    given = {name: value for name, value in overrides.items() if value is not None}
    return dataclasses.replace(settings, **given)


def check_source(settings: Settings) -> list[str]:
    """Build the monitor source once, so a bad configuration stops the start.

    A Postman key is tried with one call (``GET /me``): a refused key stops
    the start; Postman being unreachable does not (the runner starts and
    polls until it answers).

    Returns the start-up lines that list the monitors (a local file's are
    listed here; Postman's are polled by the scheduler, not at start).
    Raises ``ConfigurationError`` saying what is missing or wrong.
    """
    from scheduler.postman_source import PostmanMonitorSource
    from tasks.monitors import build_source

    try:
        source = build_source(settings, shared_budget=False)
    except ConfigurationError as error:
        if settings.postman_api_key and settings.monitors_file is None:
            raise ConfigurationError(f"{error} {SELECTION_HINT}") from None
        raise
    if source is None:
        raise ConfigurationError(
            "no monitors to run: give --key (a Postman API key, or PMRUNNER_POSTMAN_API_KEY)"
            " or --monitors-file (a monitors.yaml)"
        )
    if isinstance(source, PostmanMonitorSource):
        check_key(source)
    if settings.monitors_file is None:
        return ["monitors: from Postman, listed at the scheduler's first poll"]
    return monitor_lines(source.monitors())


def check_key(source: Any) -> None:
    """Stop the start when Postman refuses the API key (401/403)."""
    from pmrunner.errors import PostmanApiError, PostmanAuthError

    try:
        source.check_key()
    except PostmanAuthError as error:
        raise ConfigurationError(
            f"Postman refused the API key (--key / PMRUNNER_POSTMAN_API_KEY): {error}"
        ) from None
    except PostmanApiError as error:
        log.warning("could not check the Postman API key now (%s); starting anyway", error)


def consumed_queues(settings: Settings, extra: str | None) -> list[str]:
    """The default network's queue, then the ``--queues`` ones (``net.a`` or just ``a``)."""
    queues = [settings.queue_for(settings.default_network)]
    for name in (part.strip() for part in (extra or "").split(",")):
        queue = name if name.startswith("net.") else settings.queue_for(name)
        if name and queue not in queues:
            queues.append(queue)
    return queues


def start_metrics(settings: Settings) -> None:
    """Serve ``/metrics`` on the metrics port; a port that is taken is a clear error.

    The worker started next serves nothing more: this process serves already.
    """
    from tasks.presence import serve_metrics

    try:
        serve_metrics(settings)
    except OSError as error:
        reason = error.strerror or str(error)
        port, host = settings.metrics_port, settings.metrics_host
        raise ConfigurationError(
            f"--metrics-port {port} on {host} (PMRUNNER_METRICS_HOST): cannot listen: {reason}"
        ) from None


def node_name(settings: Settings) -> str:
    """The worker's node name: ``<runner id>@<this host's name>``."""
    from celery.utils.nodenames import host_format

    return str(host_format(f"{settings.runner_id or 'pmrunner'}@%h"))


def check_secret_key(settings: Settings) -> None:
    """Refuse, before anything starts, a secret key that is not the one Redis is used with."""
    from tasks.context import sealer_for

    sealer_for(settings)


def run_worker(settings: Settings, queues: list[str], concurrency: int) -> int:
    """Run the worker with its embedded scheduler until it is stopped; its exit code.

    Celery's banner and per-task lines stay off (warnings still show); the
    ``RunPrinter`` prints one line per run this process reports instead, and
    a stop prints one line of its own (``pmrunner.cli.stopping``).
    """
    from tasks.context import Services
    from worker.app import create_app

    app = create_app(settings)
    RunPrinter(Services.of(app).store.get, click.echo, color=True).connect()
    worker = quiet_stop_worker(app.Worker)(
        beat=True,
        pool="threads",
        concurrency=concurrency,
        queues=queues,
        hostname=node_name(settings),
        loglevel="WARNING",
        quiet=True,
        redirect_stdouts=False,
        without_mingle=True,
        without_gossip=True,
    )
    stops = requested_stops()
    worker.start()
    join_scheduler(worker, CHILD_STOP_SECONDS)
    # Celery exits 1 after Ctrl-C; a stop that was asked for is a clean exit.
    return 0 if stops else int(worker.exitcode or 0)


def exit_cleanly_on_stop_signals() -> None:
    """Make SIGTERM and SIGINT end this process with exit 0 until the worker takes them over.

    A stop that comes while the embedded Redis, the API or the worker's script
    contexts are still starting unwinds what was started, as a later stop
    does, instead of killing the process with Redis left running.
    """

    def stop(signum: int, _frame: Any) -> None:
        announce_stop(signal.Signals(signum).name)
        raise SystemExit(0)

    if threading.current_thread() is threading.main_thread():
        for number in (signal.SIGTERM, signal.SIGINT):
            signal.signal(number, stop)


def requested_stops() -> list[str]:
    """A list that collects the signals (SIGINT, SIGTERM ...) the worker is asked to stop by."""
    from celery.signals import worker_shutting_down

    stops: list[str] = []

    def record(sig: str = "", **_: Any) -> None:
        stops.append(sig)

    worker_shutting_down.connect(record, weak=False)
    return stops


def join_scheduler(worker: Any, timeout: float) -> None:
    """Wait for the embedded scheduler's process to finish stopping.

    The worker asks that process to stop but does not wait for it; waiting
    here lets it close its schedule file and leaves no orphan behind.
    """
    beat = getattr(worker, "beat", None)
    join = getattr(beat, "join", None)
    if callable(join):
        join(timeout)


@click.group("runner")
def runner_group() -> None:
    """Run monitors in this process: a worker with its scheduler."""


_RUNNER_OPTIONS: list[Callable[[Callable[..., Any]], Callable[..., Any]]] = [
    click.option(
        "--id",
        "runner_id",
        metavar="ID",
        help="This runner's id: names the worker (ID@host) and, with --key and no other"
        " selection, selects the monitors whose name contains [ID].",
    ),
    click.option(
        "--key",
        metavar="KEY",
        help="Postman API key used to read monitors, collections and environments"
        " (default: PMRUNNER_POSTMAN_API_KEY). Never printed.",
    ),
    click.option("--proxy", metavar="URL", help="Proxy for calls to the Postman API."),
    click.option("--metrics", is_flag=True, help="Serve Prometheus metrics on /metrics."),
    click.option(
        "--metrics-port",
        type=click.IntRange(1, 65535),
        default=DEFAULT_METRICS_PORT,
        show_default=True,
        metavar="N",
        help="Port of the metrics server (with --metrics).",
    ),
    click.option(
        "--ssl-extra-ca-certs",
        metavar="PATH",
        help="Extra trusted CA certificates (PEM) for the monitors' requests.",
    ),
    click.option(
        "--monitor",
        "monitors",
        multiple=True,
        metavar="UID",
        help="Run this Postman monitor (repeatable).",
    ),
    click.option("--workspace", metavar="ID", help="Run the monitors of this Postman workspace."),
    click.option("--marker", metavar="TEXT", help="Run the monitors whose name contains TEXT."),
    click.option(
        "--monitors-file",
        metavar="PATH",
        help="Run the monitors of this monitors.yaml instead of Postman's (no --key needed).",
    ),
    click.option(
        "--queues",
        metavar="NET,...",
        help="Network queues this process consumes besides the default network's, comma"
        " separated (net.a,net.b).",
    ),
    click.option(
        "--concurrency",
        type=click.IntRange(min=1),
        default=DEFAULT_CONCURRENCY,
        show_default=True,
        metavar="N",
        help="Requests this process runs at the same time.",
    ),
]


def runner_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """The options of ``runner start``, shared with ``up``."""
    for option in reversed(_RUNNER_OPTIONS):
        command = option(command)
    return command


@runner_group.command("start")
@runner_options
def start_command(**params: Any) -> None:
    """Start a runner: poll the monitors, run them when due, execute their requests."""
    raise click.exceptions.Exit(serve_runner(params))


def serve_runner(params: dict[str, Any], **settings_overrides: Any) -> int:
    """Run the worker, its scheduler, and the API and metrics when asked; the exit code.

    ``settings_overrides`` replace settings fields after the options are applied
    (``pmrunner up`` points ``redis_url`` at its embedded Redis).
    """
    exit_cleanly_on_stop_signals()
    try:
        settings = dataclasses.replace(configured_settings(params), **settings_overrides)
        monitors = check_source(settings)
        check_secret_key(settings)
        queues = consumed_queues(settings, params["queues"])
        for line in served_lines(settings, node_name(settings), queues) + monitors:
            click.echo(line)
        if settings.metrics_port > 0:
            start_metrics(settings)
        if settings.api_key:
            from api.server import serve_api_in_background

            serve_api_in_background(settings)
        return run_worker(settings, queues, params["concurrency"])
    except PmrunnerError as error:
        raise CommandError(str(error)) from None
