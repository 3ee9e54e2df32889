"""Monitor runs: where monitors come from, how one starts, and what follows it.

The monitor source is built once per process from the settings: a local
``monitors.yaml`` (``PMRUNNER_MONITORS_FILE``) or Postman
(``PMRUNNER_POSTMAN_API_KEY`` with a selection of monitors). The last good
list of monitors and each monitor's last collection version are kept in
Redis too, so a runner restarted while Postman is unreachable still runs
what it ran before.

After a monitor run: a failed run is retried ``retry.attempts`` times (each
attempt is its own run in the history); after ``notificationLimit`` failed
runs in a row the monitor's webhooks get one failure notice, and one
recovery notice when it passes again.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import uuid
from typing import Any

from celery import Celery

from pmrunner.errors import ConfigurationError, PmrunnerError
from runtime.loading import VariableFile
from runtime.options import RunOptions, Timeouts, TLSOptions
from runtime.reporters.run_shapes import build_report
from runtime.results import Run, ScriptError, utc_now
from scheduler.local_source import LocalMonitorSource
from scheduler.monitors import Monitor, MonitorSource
from scheduler.postman import PostmanClient
from scheduler.postman_source import MonitorSelection, PostmanMonitorSource
from scheduler.secrets import SecretOverrides
from store.keys import text
from tasks.context import Services
from tasks.dispatch import RunRequest, start_run
from worker.settings import Settings

log = logging.getLogger(__name__)
JSON = dict[str, Any]

_sources: dict[Settings, MonitorSource | None] = {}
_sources_lock = threading.Lock()


def build_source(settings: Settings) -> MonitorSource | None:
    """The monitor source the settings name, or None when there is none."""
    overrides = SecretOverrides.load(settings.secrets_file, os.environ)
    if settings.monitors_file is not None:
        return LocalMonitorSource(settings.monitors_file, overrides=overrides)
    if settings.postman_api_key:
        marker = settings.postman_marker
        if not (settings.postman_monitors or settings.postman_workspace or marker):
            marker = f"[{settings.runner_id}]" if settings.runner_id else None
        if not (settings.postman_monitors or settings.postman_workspace or marker):
            raise ConfigurationError(
                "running Postman monitors needs a selection: PMRUNNER_POSTMAN_MONITORS, "
                "PMRUNNER_POSTMAN_WORKSPACE or PMRUNNER_POSTMAN_MARKER (or a runner id)"
            )
        client = PostmanClient(
            settings.postman_api_key, base_url=settings.postman_base_url, proxy=settings.proxy
        )
        selection = MonitorSelection(
            uids=settings.postman_monitors,
            workspace=settings.postman_workspace,
            name_marker=marker,
        )
        return PostmanMonitorSource(client, selection, overrides)
    return None


def source_for(settings: Settings) -> MonitorSource | None:
    """The process's monitor source for these settings (built on first use)."""
    with _sources_lock:
        if settings not in _sources:
            _sources[settings] = build_source(settings)
        return _sources[settings]


def known_monitors(services: Services, source: MonitorSource) -> list[Monitor]:
    """The source's monitors; the last good list from Redis while it has none."""
    key = services.registry.keys.prefix + "monitors:last-known"
    monitors = source.monitors()
    if source.healthy:
        services.registry.redis.set(key, json.dumps([m.to_dict() for m in monitors]))
        return monitors
    if monitors:
        return monitors
    raw = services.registry.redis.get(key)
    return [Monitor.from_dict(m) for m in json.loads(raw)] if raw else []


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
    )


def monitor_meta(monitor: Monitor, attempt: int, slot: str | None) -> JSON:
    return {
        "uid": monitor.uid,
        "name": monitor.name,
        "attempt": attempt,
        "slot": slot,
        "definition": monitor.to_dict(),
    }


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
    run_id = uuid.uuid4().hex
    try:
        collection = _collection(services, source, monitor)
        environment: VariableFile | None = source.environment(monitor)
    except PmrunnerError as error:
        log.error("monitor %s (%s) could not start: %s", monitor.name, monitor.uid, error)
        _report_failed_start(services, monitor, run_id, error, attempt, slot, source_name)
        return run_id
    return start_run(
        app,
        RunRequest(
            collection=collection,
            environment=environment,
            options=run_options(monitor, services.settings),
            source=source_name,
            monitor=monitor_meta(monitor, attempt, slot),
            webhooks=list(monitor.webhooks),
            network_pin=monitor.network,
            run_id=run_id,
        ),
    )


def _collection(services: Services, source: MonitorSource, monitor: Monitor) -> JSON:
    """The monitor's collection; its last known version while the source fails."""
    registry = services.registry
    key = f"{registry.keys.prefix}monitor:{monitor.uid}:collection"
    try:
        collection = source.collection(monitor)
    except PmrunnerError:
        digest = registry.redis.get(key)
        cached = registry.collection(text(digest)) if digest else None
        if cached is None:
            raise
        log.warning(
            "monitor %s: source unavailable, running its last known collection", monitor.uid
        )
        return cached
    digest = registry.cache_collection(collection, services.settings.collection_ttl)
    registry.redis.set(key, digest)
    return collection


def _report_failed_start(
    services: Services,
    monitor: Monitor,
    run_id: str,
    error: Exception,
    attempt: int,
    slot: str | None,
    source_name: str,
) -> None:
    run = Run(collection_id=monitor.collection, collection_name=monitor.name)
    run.run_errors.append(ScriptError("run", type(error).__name__, str(error)))
    run.finished_at = utc_now()
    report = build_report(
        run, run_id=run_id, source=source_name, monitor=monitor_meta(monitor, attempt, slot)
    )
    services.store.save(report)
    after_monitor_run(services, report)


def after_monitor_run(services: Services, report: JSON) -> None:
    """Retry a failed run, and send failure and recovery notices."""
    meta = report.get("monitor") or {}
    if not meta.get("definition"):
        return
    monitor = Monitor.from_dict(meta["definition"])
    attempt = int(meta.get("attempt") or 1)
    failed = report["status"] == "failed"
    if failed and attempt <= monitor.retry_attempts:
        log.info("monitor %s failed (attempt %d); retrying", monitor.uid, attempt)
        services.app.send_task(
            "pmrunner.retry_monitor_run", (monitor.to_dict(), attempt + 1, meta.get("slot"))
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
    if previous >= monitor.notification_limit:
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
    log.warning("monitor %s: %s after %d failed runs", monitor.uid, event, failures)
    from tasks.outbox import enqueue

    for url in monitor.webhooks:
        enqueue(services, url, report["id"], payload)
