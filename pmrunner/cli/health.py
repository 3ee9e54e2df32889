"""``pmrunner health``: the container health check of every role.

Exit 0 when Redis (``PMRUNNER_REDIS_URL``) answers a PING and, with
``--url``, when that URL answers below 500; else one line saying what
failed, and exit 1. Docker's ``HEALTHCHECK`` runs it in the image.
"""

from __future__ import annotations

import urllib.error
import urllib.request

import click

from pmrunner.cli.output import CommandError
from pmrunner.errors import PmrunnerError

TIMEOUT_SECONDS = 5.0


def check_redis() -> None:
    """PING the configured Redis once, without retries; ``CommandError`` when it does not answer."""
    import redis

    from worker.settings import Settings

    settings = Settings.from_env()
    client = redis.Redis.from_url(
        settings.redis_url, socket_timeout=TIMEOUT_SECONDS, socket_connect_timeout=TIMEOUT_SECONDS
    )
    try:
        client.ping()
    except redis.RedisError as error:
        raise CommandError(f"Redis does not answer: {error}") from None
    finally:
        client.close()


def check_url(url: str) -> None:
    """GET ``url``; ``CommandError`` unless it answers with a status below 500."""
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_SECONDS) as answer:
            status = int(answer.status)
    except urllib.error.HTTPError as error:
        status = error.code
    except (urllib.error.URLError, OSError) as error:
        raise CommandError(f"{url} does not answer: {error}") from None
    if status >= 500:
        raise CommandError(f"{url} answered {status}")


@click.command("health")
@click.option("--url", metavar="URL", help="Also require this URL to answer (below 500).")
def health_command(url: str | None) -> None:
    """Check that Redis answers (and a URL, for the API and Flower): for container health checks."""
    try:
        check_redis()
    except PmrunnerError as error:
        raise CommandError(str(error)) from None
    if url:
        check_url(url)
    click.echo("healthy")
