"""A fake clock, and a PostmanClient on the fake Postman API, for the client tests."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest

from scheduler.postman import PostmanClient
from tests.fakes import FakePostman

WALL_NOW = 1_700_000_000.0  # the wall clock the client sees, for HTTP dates


class FakeTime:
    """A monotonic clock that moves only when slept on; records every wait."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []
        self._lock = threading.Lock()

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.sleeps.append(seconds)
            self.now += seconds


@pytest.fixture(autouse=True, name="_no_proxy_from_environment")
def no_proxy_from_environment_fixture(monkeypatch: pytest.MonkeyPatch) -> None:
    """Used in every test of each module that imports it."""
    # A proxy set on the machine must not divert these loopback calls.
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)


@pytest.fixture(name="fake_time")
def fake_time_fixture() -> FakeTime:
    return FakeTime()


@pytest.fixture(name="fake")
def fake_fixture(fake_time: FakeTime) -> Iterator[FakePostman]:
    with FakePostman(clock=fake_time.clock) as server:
        yield server


def make_client(fake: FakePostman, fake_time: FakeTime, **options: Any) -> PostmanClient:
    settings: dict[str, Any] = {
        "base_url": fake.url,
        "timeout": 5.0,
        "sleep": fake_time.sleep,
        "clock": fake_time.clock,
        "wall_clock": lambda: WALL_NOW,
    }
    settings.update(options)
    api_key = settings.pop("api_key", fake.api_key)
    return PostmanClient(api_key, **settings)


@pytest.fixture(name="client")
def client_fixture(fake: FakePostman, fake_time: FakeTime) -> Iterator[PostmanClient]:
    with make_client(fake, fake_time) as postman:
        yield postman
