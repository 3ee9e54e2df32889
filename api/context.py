"""What the API's handlers share: the settings, the Celery app and its Redis services."""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

import redis
from celery import Celery
from starlette.requests import Request

from tasks.context import Services
from worker.settings import Settings

# Health checks must answer quickly even when Redis hangs.
HEALTH_REDIS_TIMEOUT = 2.0


@dataclass
class ApiContext:
    """One API app's shared state.

    Parameters:
        settings: the API's settings (Redis, monitor source, key, limits).
        celery_app: the Celery app runs are sent through.
        services: the run registry and run store on the settings' Redis.
        health_redis: a Redis client with short timeouts, for health checks.
    """

    settings: Settings
    celery_app: Celery
    services: Services
    health_redis: redis.Redis

    @classmethod
    def build(cls, settings: Settings, celery_app: Celery) -> ApiContext:
        """The context for ``settings``; connects to nothing until first used."""
        health_redis = redis.Redis.from_url(
            settings.redis_url,
            socket_connect_timeout=HEALTH_REDIS_TIMEOUT,
            socket_timeout=HEALTH_REDIS_TIMEOUT,
        )
        return cls(settings, celery_app, Services.of(celery_app), health_redis)

    def redis_answers(self) -> bool:
        """Whether Redis answers a PING within the health timeout (blocking)."""
        try:
            return bool(self.health_redis.ping())
        except (redis.RedisError, OSError):
            return False


def context_of(request: Request) -> ApiContext:
    """The context of the app that serves ``request``."""
    return cast(ApiContext, request.app.state.context)
