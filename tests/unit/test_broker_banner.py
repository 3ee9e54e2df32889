"""The broker URL a worker shows: as given, with only a password that is there masked.

Celery's worker banner (``.> transport:``), its "Connected to" and its
"Cannot connect to" lines show ``app.connection().as_uri()``.
"""

from __future__ import annotations

import dataclasses

import pytest

from worker.app import create_app
from worker.settings import Settings


def shown_url(redis_url: str) -> str:
    """The broker URL Celery shows for a worker on ``redis_url``."""
    app = create_app(dataclasses.replace(Settings(), redis_url=redis_url))
    return str(app.connection().as_uri())


@pytest.mark.parametrize(
    ("given", "shown"),
    [
        ("redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0"),
        ("redis://user@127.0.0.1:6379/0", "redis://user@127.0.0.1:6379/0"),
        ("rediss://127.0.0.1:6380/3", "rediss://127.0.0.1:6380/3"),
        ("unix:///run/redis.sock?db=2", "redis+socket:///run/redis.sock"),
    ],
)
def test_a_url_without_password_is_shown_without_a_mask(given: str, shown: str) -> None:
    assert shown_url(given) == shown


@pytest.mark.parametrize(
    ("given", "shown"),
    [
        ("redis://:s3cret-pw@127.0.0.1:6379/0", "redis://:**@127.0.0.1:6379/0"),
        ("redis://ops:s3cret-pw@127.0.0.1:6379/1", "redis://ops:**@127.0.0.1:6379/1"),
    ],
)
def test_a_password_is_still_masked(given: str, shown: str) -> None:
    assert shown_url(given) == shown


def test_the_password_is_there_for_the_connection_itself() -> None:
    url = "redis://:s3cret-pw@127.0.0.1:6379/0"
    app = create_app(dataclasses.replace(Settings(), redis_url=url))
    assert app.connection().as_uri(include_password=True) == url
