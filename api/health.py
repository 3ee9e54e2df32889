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
from scheduler.catalog_source import CatalogSource
from scheduler.health import SourceHealth, register_source_metrics
from store.runs import RunStore
from tasks.monitors import source_for
from worker.metrics import register_monitor_run_counts
from worker.settings import Settings

OPENAPI_FILE = "openapi.yaml"


def source_health(settings: Settings) -> SourceHealth | None:
    """The monitor source's health (blocking); None when no source is configured.

    Postman's comes from the poller's record in Redis (the API never polls);
    local files are read here, which is cheap.
    """
    try:
        source = source_for(settings)
    except PmrunnerError as error:  # a configuration that cannot build a source
        return SourceHealth("unhealthy", str(error))
    if source is None:
        return None
    if isinstance(source, CatalogSource):
        return source.health()
    source.monitors()
    return SourceHealth("healthy" if source.healthy else "unhealthy", source.last_error)


def monitor_source_state(context: ApiContext) -> SourceHealth:
    """The health ``/health`` reports, also served by ``/metrics``."""
    register_source_metrics(lambda: source_health(context.settings))
    return source_health(context.settings) or SourceHealth("none")


async def health(request: Request) -> Response:
    """200 while Redis answers, else 503; says how the monitor source is doing.

    ``status`` is ``ok``, or ``degraded`` while the monitor source is not
    healthy (monitors then run from the last good poll, or not at all when it
    is ``unhealthy``); ``monitorSourceDetail`` says why and how old the last
    good poll is.
    """
    context = context_of(request)
    redis_ok = await run_in_threadpool(context.redis_answers)
    source = SourceHealth("none")
    if redis_ok or context.settings.monitors_file is not None:
        source = await run_in_threadpool(monitor_source_state, context)
    status = "ok" if source.state in ("healthy", "none", "starting") else "degraded"
    body = {
        "status": status if redis_ok else "unavailable",
        "redis": "ok" if redis_ok else "unreachable",
        "monitorSource": source.state,
        "monitorSourceDetail": source.to_dict(),
        "version": __version__,
    }
    return JSONResponse(body, status_code=200 if redis_ok else 503)


async def metrics(request: Request) -> Response:
    """This process's Prometheus metrics, in the text exposition format.

    The monitor source's state and the monitor run counts are read from Redis,
    so every process's metrics agree with each other and with ``/health``.
    """
    context = context_of(request)
    register_source_metrics(lambda: source_health(context.settings))
    # Read through the health client: a Redis that is away costs a scrape seconds, not minutes.
    counts = RunStore(context.health_redis, context.services.store.keys)
    register_monitor_run_counts(counts.monitor_run_counts)
    body = await run_in_threadpool(generate_latest, REGISTRY)
    return Response(body, media_type=CONTENT_TYPE_LATEST)


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
