"""Run a Monitor: ``POST /monitors/{monitor_uid}/run``, as in Postman's API.

The monitor comes from the configured monitor source (a ``monitors.yaml``
or Postman). The run goes through the workers like a scheduled one, with
source ``api``, and the request waits for its report: 200 with Postman's
``{run: {info, stats, executions, failures}}``. A run that outlasts the wait
(the settings' run deadline plus 30 s, or a shorter ``?timeout=SECONDS``)
gets 504; it still ends, and its report is stored.
"""

from __future__ import annotations

import logging
import math
import time

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from api.context import context_of
from api.errors import ApiError, invalid_param, not_found
from pmrunner.errors import PmrunnerError
from runtime.reporters.run_shapes import monitor_run_result
from scheduler.monitors import Monitor, MonitorSource
from tasks.context import Services
from tasks.finalize import wait_for_report
from tasks.monitors import known_monitors, source_for, start_monitor_run
from worker.settings import Settings

log = logging.getLogger("pmrunner.api")

RUN_SOURCE = "api"
# A run's report comes at most this long after its deadline (the sweeper's turn).
WAIT_AFTER_DEADLINE = 30.0
# How long one blocking wait holds a worker thread before the client is checked again.
WAIT_SLICE = 1.0
NO_SOURCE = (
    "No monitor source is configured: set PMRUNNER_MONITORS_FILE (a monitors.yaml) or "
    "PMRUNNER_POSTMAN_API_KEY with a selection of Postman monitors."
)


def wait_limit(raw: str | None, settings: Settings) -> float:
    """Seconds to wait for the report: the default, or a shorter ``?timeout``.

    Raises ApiError (400) when ``raw`` is not a positive number.
    """
    longest = settings.run_deadline + WAIT_AFTER_DEADLINE
    if raw is None:
        return longest
    try:
        seconds = float(raw)
    except ValueError:
        seconds = math.nan
    if not math.isfinite(seconds) or seconds <= 0:
        raise invalid_param(f"timeout must be a number of seconds above 0, got {raw!r}")
    return min(seconds, longest)


def configured_source(settings: Settings) -> MonitorSource:
    """The monitor source of the settings; ApiError when there is none or it is broken."""
    try:
        source = source_for(settings)
    except PmrunnerError as error:
        message = f"The monitor source is misconfigured: {error}"
        raise ApiError(500, "configurationError", message) from None
    if source is None:
        raise not_found(NO_SOURCE)
    return source


def find_monitor(services: Services, source: MonitorSource, uid: str) -> Monitor:
    """The monitor ``uid`` among the source's; the source is read again once if it is missing."""
    for attempt in range(2):
        if attempt:
            source.refresh()  # added since the last read?
        for monitor in known_monitors(services, source):
            if monitor.uid == uid:
                return monitor
    raise not_found(f"Monitor {uid!r} was not found in the monitor source.")


def start(services: Services, source: MonitorSource, monitor: Monitor) -> str:
    """Start one run of ``monitor`` now; its run id."""
    try:
        return start_monitor_run(services.app, services, source, monitor, source_name=RUN_SOURCE)
    except PmrunnerError as error:
        raise ApiError(
            500, "runStartError", f"monitor {monitor.uid!r} could not start: {error}"
        ) from error


async def wait_for_run(
    request: Request, services: Services, run_id: str, timeout: float
) -> dict[str, object] | None:
    """The run's report once stored; None after ``timeout`` s or when the client left.

    Waits in short blocking slices, so a worker thread is never held long
    and a client that hung up stops the wait (not the run).
    """
    deadline = time.monotonic() + timeout
    while True:
        remaining = deadline - time.monotonic()
        report = await run_in_threadpool(
            wait_for_report, services, run_id, max(min(remaining, WAIT_SLICE), 0.0)
        )
        if report is not None or remaining <= WAIT_SLICE:
            return report
        if await request.is_disconnected():
            log.info("run %s: the client left before the report; the run goes on", run_id)
            return None


async def run_monitor(request: Request) -> Response:
    """``POST /monitors/{monitor_uid}/run``: run the monitor now and answer with the results."""
    context = context_of(request)
    uid = request.path_params["monitor_uid"]
    timeout = wait_limit(request.query_params.get("timeout"), context.settings)
    source = await run_in_threadpool(configured_source, context.settings)
    monitor = await run_in_threadpool(find_monitor, context.services, source, uid)
    run_id = await run_in_threadpool(start, context.services, source, monitor)
    log.info("monitor %s: run %s started through the API", uid, run_id)
    report = await wait_for_run(request, context.services, run_id, timeout)
    if report is None:
        raise ApiError(
            504,
            "runTimeout",
            f"The run {run_id} of monitor {uid!r} did not finish within {timeout:g} s; "
            "it goes on, and its report is stored when it ends.",
        )
    return JSONResponse(monitor_run_result(report))
