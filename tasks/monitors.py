"""Monitor runs: where monitors come from, how one starts, and what follows it.

Two views of the monitor source, built once per process from the settings:

- :func:`build_source` reads the source itself: a local ``monitors.yaml``
  (``PMRUNNER_MONITORS_FILE``) or the Postman API (``PMRUNNER_POSTMAN_API_KEY``
  with a selection of monitors, drawing on the cluster's rate budget). Only
  the poller uses it.
- :func:`source_for` is what runs start from: for Postman, the catalog of
  the last good poll in Redis (no call to Postman, so runs start while it is
  down); for local files, the files themselves.

After a monitor run: a failed run is retried ``retry.attempts`` times (each
attempt is its own run in the history); after ``notificationLimit`` failed
runs in a row the monitor's webhooks get one failure notice, and one
recovery notice when it passes again (a limit of 0 sends neither).
"""

from __future__ import annotations

import functools
import logging
import os
import threading
import uuid
from collections.abc import Callable
from typing import Any

from celery import Celery

from pmrunner.errors import ConfigurationError, PmrunnerError
from runtime.loading import VariableFile, load_collection
from runtime.options import RunOptions, Timeouts, TLSOptions
from runtime.reporters.run_shapes import build_report
from runtime.results import Run, ScriptError, utc_now
from scheduler.budget import MONITOR_CALLS_PER_SECOND, RedisBudget
from scheduler.catalog import Catalog
from scheduler.catalog_source import CatalogSource
from scheduler.local_source import LocalMonitorSource
from scheduler.monitors import Monitor, MonitorSource
from scheduler.postman import PostmanClient
from scheduler.postman_source import MonitorSelection, PostmanMonitorSource
from scheduler.secrets import SecretOverrides
from scheduler.snapshot import stored_collection_id
from store.sealing import Sealer
from tasks.context import Services, redis_for, sealer_for
from tasks.dispatch import RunRequest, prepare_run
from worker.settings import Settings

log = logging.getLogger(__name__)
JSON = dict[str, Any]

# The poller's calls give up quickly and are not retried: after a failed poll
# the next one comes within seconds, and a hanging Postman must not hold a poll
# for minutes.
POLL_TIMEOUT = 10.0
POLL_RETRIES = 0

_sources: dict[Settings, MonitorSource | None] = {}
_sources_lock = threading.Lock()


def build_source(
    settings: Settings, *, shared_budget: bool = True
) -> LocalMonitorSource | PostmanMonitorSource | None:
    """The monitor source the settings name, read directly; None when there is none.

    Parameters:
        settings: the settings (monitors file, or Postman key and selection).
        shared_budget: draw Postman calls from the cluster's budget in Redis
            (else from one for this process only).
    """
    overrides = SecretOverrides.load(settings.secrets_file, os.environ)
    if settings.monitors_file is not None:
        return LocalMonitorSource(settings.monitors_file, overrides=overrides)
    if not settings.postman_api_key:
        return None
    selection = postman_selection(settings)
    budget = None
    if shared_budget:
        budget = RedisBudget(
            redis_for(settings), settings.postman_api_key, settings.postman_base_url
        )
    client = PostmanClient(
        settings.postman_api_key,
        base_url=settings.postman_base_url,
        proxy=settings.proxy,
        timeout=POLL_TIMEOUT,
        max_retries=POLL_RETRIES,
        budget=budget,
    )
    calls_per_poll = int(settings.poll_interval * MONITOR_CALLS_PER_SECOND)
    return PostmanMonitorSource(client, selection, overrides, details_per_poll=calls_per_poll)


def postman_selection(settings: Settings) -> MonitorSelection:
    """Which Postman monitors the settings select (the runner id is the default marker)."""
    marker = settings.postman_marker
    if not (settings.postman_monitors or settings.postman_workspace or marker):
        marker = f"[{settings.runner_id}]" if settings.runner_id else None
    if not (settings.postman_monitors or settings.postman_workspace or marker):
        raise ConfigurationError(
            "running Postman monitors needs a selection: PMRUNNER_POSTMAN_MONITORS, "
            "PMRUNNER_POSTMAN_WORKSPACE or PMRUNNER_POSTMAN_MARKER (or a runner id)"
        )
    return MonitorSelection(
        uids=settings.postman_monitors,
        workspace=settings.postman_workspace,
        name_marker=marker,
    )


def catalog_for(settings: Settings) -> Catalog:
    """The deployment's monitor catalog in Redis."""
    sealer = sealer_for(settings)
    return Catalog(redis_for(settings), settings.key_prefix, settings.max_staleness, sealer)


def source_for(settings: Settings) -> MonitorSource | None:
    """What this process starts monitor runs from (built on first use); None without a source.

    Postman monitors come from the catalog of the last good poll; local ones
    from their files.
    """
    with _sources_lock:
        if settings not in _sources:
            _sources[settings] = _run_source(settings)
        return _sources[settings]


def _run_source(settings: Settings) -> MonitorSource | None:
    if settings.monitors_file is not None:
        return build_source(settings)
    if not settings.postman_api_key:
        return None
    postman_selection(settings)  # a configuration without a selection is refused here too
    overrides = SecretOverrides.load(settings.secrets_file, os.environ)
    return CatalogSource(catalog_for(settings), overrides, poll_interval=settings.poll_interval)


def known_monitors(services: Services, source: MonitorSource) -> list[Monitor]:
    """The monitors a run may be started for: the source's current ones."""
    return source.monitors()


def run_options(monitor: Monitor, settings: Settings) -> RunOptions:
    """A monitor's options as run options.

    Parameters:
        monitor: the monitor whose options (delay, redirects, timeout, SSL) apply.
        settings: the runner's settings; ``extra_ca_certs`` is trusted for every monitor.
    """
    options = monitor.options
    return RunOptions(
        delay_request_ms=options.request_delay_ms,
        follow_redirects=options.follow_redirects,
        timeouts=Timeouts(request=options.request_timeout_ms),
        tls=TLSOptions(verify=options.strict_ssl, extra_ca_certs=settings.extra_ca_certs),
        max_response_bytes=settings.max_response_size,
    )


def monitor_meta(monitor: Monitor, attempt: int, slot: str | None, sealer: Sealer) -> JSON:
    """What a monitor's run records of it; the definition's webhook URLs sealed."""
    return {
        "uid": monitor.uid,
        "name": monitor.name,
        "attempt": attempt,
        "slot": slot,
        "definition": sealed_definition(monitor, sealer),
    }


def sealed_definition(monitor: Monitor, sealer: Sealer) -> JSON:
    """A monitor as stored runs and task messages carry it: its webhook URLs (often
    holding a token) sealed."""
    definition = monitor.to_dict()
    definition["webhooks"] = [sealer.seal(url) for url in monitor.webhooks]
    return definition


def opened_monitor(definition: JSON, sealer: Sealer) -> Monitor:
    """The inverse of :func:`sealed_definition`."""
    opened = dict(definition)
    opened["webhooks"] = [sealer.open(url) for url in definition.get("webhooks") or ()]
    return Monitor.from_dict(opened)


def start_monitor_run(
    app: Celery,
    services: Services,
    source: MonitorSource,
    monitor: Monitor,
    *,
    attempt: int = 1,
    slot: str | None = None,
    source_name: str = "monitor",
) -> str:
    """Start one run of ``monitor``; a run that cannot start is reported as failed."""
    launch = prepare_monitor_run(
        app, services, source, monitor, attempt=attempt, slot=slot, source_name=source_name
    )
    return launch()


def prepare_monitor_run(
    app: Celery,
    services: Services,
    source: MonitorSource,
    monitor: Monitor,
    *,
    attempt: int = 1,
    slot: str | None = None,
    source_name: str = "monitor",
    start_at: float | None = None,
) -> Callable[[], str]:
    """Prepare one run of ``monitor``; what starts it (and returns its id) when called.

    Parameters:
        start_at: when the run will be started (see :func:`tasks.dispatch.prepare_run`).

    A run that cannot start is reported as failed when the returned function is called.
    """
    run_id = uuid.uuid4().hex
    try:
        collection = source.collection(monitor)
        environment: VariableFile | None = source.environment(monitor)
    except PmrunnerError as error:
        return functools.partial(
            refuse_start, services, monitor, run_id, error, slot, attempt, source_name
        )
    prepared = prepare_run(
        app,
        RunRequest(
            collection=collection,
            environment=environment,
            options=run_options(monitor, services.settings),
            source=source_name,
            monitor=monitor_meta(monitor, attempt, slot, services.registry.sealer),
            webhooks=list(monitor.webhooks),
            network_pin=monitor.network,
            run_id=run_id,
            resend_unsafe=monitor.resend_unsafe,
        ),
        start_at,
    )
    return prepared.send


def refuse_start(
    services: Services,
    monitor: Monitor,
    run_id: str,
    error: Exception,
    slot: str | None,
    attempt: int = 1,
    source_name: str = "monitor",
) -> str:
    """Log and store a run of ``monitor`` that could not start; its id."""
    log.error("monitor %s (%s) could not start: %s", monitor.name, monitor.uid, error)
    report_failed_start(services, monitor, run_id, error, attempt, slot, source_name)
    return run_id


def report_failed_start(
    services: Services,
    monitor: Monitor,
    run_id: str,
    error: Exception,
    attempt: int,
    slot: str | None,
    source_name: str,
) -> None:
    """Store a run that could not start, with its reason, under the collection's id."""
    from worker.metrics import RUNS_FINISHED

    collection_id = failed_start_collection_id(services, monitor)
    run = Run(collection_id=collection_id, collection_name=monitor.name)
    run.run_errors.append(ScriptError("run", type(error).__name__, str(error)))
    run.finished_at = utc_now()
    report = build_report(
        run,
        run_id=run_id,
        source=source_name,
        monitor=monitor_meta(monitor, attempt, slot, services.registry.sealer),
    )
    report["error"] = f"could not start: {error}"
    services.store.save(report)
    RUNS_FINISHED.labels(report["status"], source_name).inc()
    after_monitor_run(services, report)


def failed_start_collection_id(services: Services, monitor: Monitor) -> str:
    """The id the runs of ``monitor``'s collection are stored under, when its run could not start.

    A Postman collection's is the id in its UID. A local collection file's is
    its ``_postman_id`` (as a run that started stores it), read from the file
    when it still reads; else the collection id of the monitor's last stored
    run; else an id made from the file's path, the same every time, so the
    Collection Runs API can always reach the run.
    """
    if monitor.source != "local":
        return stored_collection_id(monitor.collection)
    try:
        return load_collection(monitor.collection).id
    except PmrunnerError:
        pass
    last = services.store.last_runs([monitor.uid]).get(monitor.uid)
    if last and last.get("collectionId"):
        return str(last["collectionId"])
    return str(uuid.uuid5(uuid.NAMESPACE_URL, "pmrunner:collection-file:" + monitor.collection))


def after_monitor_run(services: Services, report: JSON) -> None:
    """Retry a failed run, and send failure and recovery notices."""
    meta = report.get("monitor") or {}
    if not meta.get("definition"):
        return
    monitor = opened_monitor(meta["definition"], services.registry.sealer)
    attempt = int(meta.get("attempt") or 1)
    failed = report["status"] == "failed"
    if failed and attempt <= monitor.retry_attempts:
        log.info("monitor %s failed (attempt %d); retrying", monitor.uid, attempt)
        services.app.send_task(
            "pmrunner.retry_monitor_run", (meta["definition"], attempt + 1, meta.get("slot"))
        )
        return
    _notify(services, monitor, report, failed)


def _notify(services: Services, monitor: Monitor, report: JSON, failed: bool) -> None:
    redis = services.registry.redis
    key = f"{services.registry.keys.prefix}monitor:{monitor.uid}:failures"
    if failed:
        count = int(redis.incr(key))
        if count == monitor.notification_limit:
            _send_notice(services, monitor, report, "monitor.failing", count)
        return
    previous = int(redis.getset(key, 0) or 0)
    # A recovery is news only to whoever heard of the failure: a limit of 0
    # sends no failure notice, so it sends no recovery either.
    if monitor.notification_limit > 0 and previous >= monitor.notification_limit:
        _send_notice(services, monitor, report, "monitor.recovered", previous)


def _send_notice(
    services: Services, monitor: Monitor, report: JSON, event: str, failures: int
) -> None:
    payload = {
        "event": event,
        "monitor": {"uid": monitor.uid, "name": monitor.name},
        "consecutiveFailures": failures,
        "runId": report["id"],
        "status": report["status"],
        "finishedAt": report["finishedAt"],
    }
    # With no webhook to tell, the run lines already say it failed: not a warning then.
    level = logging.WARNING if monitor.webhooks else logging.INFO
    log.log(level, "monitor %s: %s after %d failed runs", monitor.uid, event, failures)
    from tasks.outbox import enqueue

    for url in monitor.webhooks:
        enqueue(services, url, report["id"], payload)
