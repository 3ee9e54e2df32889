"""The service endpoints: ``/health``, ``/metrics`` and ``/openapi.json``."""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any

import yaml
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from api.context import ApiContext, context_of
from pmrunner import __version__
from pmrunner.errors import PmrunnerError
from tasks.monitors import source_for
from worker.metrics import SOURCE_HEALTHY

OPENAPI_FILE = "openapi.yaml"


def monitor_source_state(context: ApiContext) -> str:
    """``none`` without a monitor source, else ``healthy`` or ``unhealthy`` (blocking).

    The first call reads the source (for Postman: one poll); later calls
    report the state of the source's last read without polling again.
    """
    try:
        source = source_for(context.settings)
    except PmrunnerError:
        return "unhealthy"  # a configuration that cannot build a source
    if source is None:
        return "none"
    source.monitors()
    SOURCE_HEALTHY.set(1 if source.healthy else 0)
    return "healthy" if source.healthy else "unhealthy"


async def health(request: Request) -> Response:
    """200 while Redis answers, else 503; says how the monitor source is doing."""
    context = context_of(request)
    redis_ok = await run_in_threadpool(context.redis_answers)
    body = {
        "status": "ok" if redis_ok else "unavailable",
        "redis": "ok" if redis_ok else "unreachable",
        "monitorSource": await run_in_threadpool(monitor_source_state, context),
        "version": __version__,
    }
    return JSONResponse(body, status_code=200 if redis_ok else 503)


async def metrics(request: Request) -> Response:
    """This process's Prometheus metrics, in the text exposition format."""
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)


@cache
def openapi_document() -> dict[str, Any]:
    """pmrunner's OpenAPI document (``api/openapi.yaml``), read once."""
    text = resources.files("api").joinpath(OPENAPI_FILE).read_text(encoding="utf-8")
    document: dict[str, Any] = yaml.safe_load(text)
    return document


async def openapi(request: Request) -> Response:
    """The OpenAPI 3.1 document of this API, as JSON."""
    body = json.dumps(openapi_document(), indent=2).encode()
    return Response(body, media_type="application/json")
