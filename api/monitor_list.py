"""The monitors of the runner: ``GET /monitors`` and ``GET /monitors/{monitor_uid}``.

Each monitor with its schedule, the next slot the scheduler holds for it
and its last stored run (see :mod:`tasks.overview`).
"""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from api.context import ApiContext, context_of
from api.errors import ApiError, not_found
from pmrunner.errors import PmrunnerError
from tasks.overview import MonitorStatus, monitor_statuses, status_json


def statuses(context: ApiContext, uid: str | None = None) -> list[MonitorStatus]:
    """The monitors' statuses (blocking); ApiError (500) when the source is misconfigured."""
    try:
        return monitor_statuses(context.settings, context.services.store, uid=uid)
    except PmrunnerError as error:
        message = f"The monitor source is misconfigured: {error}"
        raise ApiError(500, "configurationError", message) from None


async def list_monitors(request: Request) -> Response:
    """``GET /monitors``: every monitor, sorted by name."""
    found = await run_in_threadpool(statuses, context_of(request))
    return JSONResponse({"monitors": [status_json(status) for status in found]})


async def get_monitor(request: Request) -> Response:
    """``GET /monitors/{monitor_uid}``: one monitor; 404 when the source has none of that uid."""
    uid = request.path_params["monitor_uid"]
    found = await run_in_threadpool(statuses, context_of(request), uid)
    if not found:
        raise not_found(f"Monitor {uid!r} was not found in the monitor source.")
    return JSONResponse({"monitor": status_json(found[0])})
