"""The service endpoints: ``/health``, ``/metrics`` and ``/openapi.json``."""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any

import redis
import yaml
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from api.context import ApiContext, context_of
from pmrunner import __version__
from scheduler.health import SourceHealth, register_source_metrics
from tasks.observe import ClusterState, read_cluster, register_cluster_metrics, source_health

OPENAPI_FILE = "openapi.yaml"


def monitor_source_state(context: ApiContext) -> SourceHealth:
    """The health ``/health`` reports, also served by ``/metrics``."""
    register_source_metrics(lambda: source_health(context.settings))
    return source_health(context.settings) or SourceHealth("none")


def cluster_state(context: ApiContext) -> ClusterState | None:
    """Workers and queues for ``/health``, read as ``/metrics`` reads them (None: no Redis)."""
    try:
        return read_cluster(context.health_redis, context.settings)
    except (redis.RedisError, OSError):
        return None


async def health(request: Request) -> Response:
    """200 while Redis answers, else 503; says how the monitor source, workers and queues are.

    ``status`` is ``ok``, or ``degraded`` while the monitor source is not
    healthy (monitors then run from the last good poll, or not at all when it
    is ``unhealthy``); ``monitorSourceDetail`` says why and how old the last
    good poll is. ``workers`` counts live workers (by heartbeat), in all and
    per network; ``queues`` gives each queue's depth and oldest message age:
    the figures ``/metrics`` serves.
    """
    context = context_of(request)
    redis_ok = await run_in_threadpool(context.redis_answers)
    source = SourceHealth("none")
    if redis_ok or context.settings.monitors_file is not None:
        source = await run_in_threadpool(monitor_source_state, context)
    cluster = await run_in_threadpool(cluster_state, context) if redis_ok else None
    status = "ok" if source.state in ("healthy", "none", "starting") else "degraded"
    body = {
        "status": status if redis_ok else "unavailable",
        "redis": "ok" if redis_ok else "unreachable",
        "monitorSource": source.state,
        "monitorSourceDetail": source.to_dict(),
        **(cluster.to_health() if cluster else {"workers": None, "queues": None}),
        "version": __version__,
    }
    return JSONResponse(body, status_code=200 if redis_ok else 503)


async def metrics(request: Request) -> Response:
    """This process's Prometheus metrics, in the text exposition format.

    The monitor source's state, the workers, the queues and what stored runs
    count are read from Redis (``tasks.observe``), so every process's metrics
    agree with each other and with ``/health``.
    """
    context = context_of(request)
    # Read through the health client: a Redis that is away costs a scrape seconds, not minutes.
    register_cluster_metrics(context.settings, context.health_redis)
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
