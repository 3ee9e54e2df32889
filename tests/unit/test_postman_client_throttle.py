"""Client-side throttling of Postman API calls, and reading rate-limit headers."""

from __future__ import annotations

import email.utils
import threading

import pytest

from scheduler.ratelimit import SlidingWindow, Throttle, retry_after_seconds
from tests.fakes import FakePostman

# The *_fixture names are fixtures: pytest finds them under the names their decorators give.
from tests.unit.postman_client_helpers import (  # noqa: F401
    WALL_NOW,
    FakeTime,
    fake_fixture,
    fake_time_fixture,
    make_client,
    no_proxy_from_environment_fixture,
)


def test_requests_per_minute_throttle_waits_for_the_window(
    fake: FakePostman, fake_time: FakeTime
) -> None:
    client = make_client(fake, fake_time, requests_per_minute=3)
    uid = fake.add_collection()

    for _ in range(4):
        client.get_collection(uid)

    assert fake_time.sleeps == [60.0]


def test_monitor_calls_are_throttled_per_10_seconds_but_others_are_not(
    fake: FakePostman, fake_time: FakeTime
) -> None:
    client = make_client(fake, fake_time, monitor_calls_per_10s=2)
    monitor_uid = fake.add_monitor()["uid"]
    collection_uid = fake.add_collection()

    for _ in range(3):
        client.get_collection(collection_uid)
    assert fake_time.sleeps == []

    for _ in range(3):
        client.get_monitor(monitor_uid)
    assert fake_time.sleeps == [10.0]


def test_throttle_is_thread_safe_and_queues_callers_in_order() -> None:
    frozen = FakeTime()
    frozen_sleeps: list[float] = []
    throttle = Throttle(clock=frozen.clock, sleep=frozen_sleeps.append)
    window = SlidingWindow(5, 10.0)
    waits: list[float] = []
    lock = threading.Lock()

    def call() -> None:
        waited = throttle.acquire(window)
        with lock:
            waits.append(waited)

    threads = [threading.Thread(target=call) for _ in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=5)

    assert sorted(waits) == [0.0] * 5 + [10.0] * 5 + [20.0] * 2


def test_throttle_hold_delays_every_caller() -> None:
    frozen = FakeTime()
    throttle = Throttle(clock=frozen.clock, sleep=frozen.sleep)
    window = SlidingWindow(100, 60.0)

    throttle.hold(5.0)
    throttle.hold(2.0)  # a shorter hold never cuts the longer one

    assert throttle.acquire(window) == 5.0
    assert throttle.acquire(window) == 0.0


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"Retry-After": "7"}, 7.0),
        ({"Retry-After": "1.5"}, 1.5),
        ({"Retry-After": email.utils.formatdate(WALL_NOW + 45, usegmt=True)}, 45.0),
        ({"Retry-After": email.utils.formatdate(WALL_NOW - 45, usegmt=True)}, 0.0),
        ({"RetryAfter": "9"}, 9.0),
        ({"X-RateLimit-RetryAfter": "4"}, 4.0),
        ({"X-RateLimit-Reset": str(int(WALL_NOW) + 20)}, 20.0),
        ({"X-RateLimit-Reset": "15"}, 15.0),
        ({"Retry-After": "soon"}, None),
        ({"Retry-After": "soon", "X-RateLimit-Reset": "8"}, 8.0),
        ({}, None),
    ],
)
def test_retry_after_headers_are_parsed(headers: dict[str, str], expected: float | None) -> None:
    assert retry_after_seconds(headers, WALL_NOW) == expected
