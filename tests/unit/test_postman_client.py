"""PostmanClient against the fake Postman API, over real HTTP on loopback."""

from __future__ import annotations

import email.utils
import logging
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from pmrunner.errors import (
    ConfigurationError,
    InputError,
    PostmanApiError,
    PostmanAuthError,
    PostmanNotFoundError,
    PostmanRateLimitError,
    PostmanResponseError,
    PostmanUnavailableError,
)
from scheduler.postman import PostmanClient
from scheduler.ratelimit import SlidingWindow, Throttle, retry_after_seconds
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


@pytest.fixture(autouse=True)
def _no_proxy_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    # A proxy set on the machine must not divert these loopback calls.
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)


@pytest.fixture
def fake_time() -> FakeTime:
    return FakeTime()


@pytest.fixture
def fake(fake_time: FakeTime) -> Iterator[FakePostman]:
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


@pytest.fixture
def client(fake: FakePostman, fake_time: FakeTime) -> Iterator[PostmanClient]:
    with make_client(fake, fake_time) as postman:
        yield postman


# -- monitors ------------------------------------------------------------------------


def test_list_monitors_follows_cursors_through_every_page(
    fake: FakePostman, client: PostmanClient
) -> None:
    added = [fake.add_monitor(f"monitor {n}")["uid"] for n in range(60)]

    monitors = client.list_monitors()

    assert [monitor["uid"] for monitor in monitors] == added
    calls = fake.requests_to("/monitors")
    assert len(calls) == 3
    assert [call.param("limit") for call in calls] == ["25", "25", "25"]
    assert calls[0].param("cursor") is None
    assert calls[1].param("cursor") and calls[2].param("cursor")
    assert calls[1].param("cursor") != calls[2].param("cursor")


def test_list_monitors_sends_and_applies_workspace_and_active_filters(
    fake: FakePostman, client: PostmanClient
) -> None:
    wanted = fake.add_monitor("a", workspace="ws-1")["uid"]
    paused = fake.add_monitor("b", workspace="ws-1")["uid"]
    fake.deactivate_monitor(paused)
    fake.add_monitor("c", workspace="ws-2")

    active = client.list_monitors(workspace="ws-1", active=True)
    inactive = client.list_monitors(workspace="ws-1", active=False)

    assert [monitor["uid"] for monitor in active] == [wanted]
    assert [monitor["uid"] for monitor in inactive] == [paused]
    first = fake.requests_to("/monitors")[0]
    assert first.param("workspace") == "ws-1"
    assert first.param("active") == "true"


def test_list_monitors_without_a_monitors_list_is_a_clear_error(
    fake: FakePostman, client: PostmanClient
) -> None:
    fake.fail_next(1, 200, body={"data": []}, path="/monitors")

    with pytest.raises(PostmanResponseError, match=r"GET /monitors\?limit=25.*'monitors' list"):
        client.list_monitors()


def test_get_monitor_returns_the_monitor_object(fake: FakePostman, client: PostmanClient) -> None:
    collection_uid = fake.add_collection(name="Health")
    added = fake.add_monitor(
        "health", collection_uid=collection_uid, cron="*/5 * * * *", timezone="Europe/Paris"
    )

    monitor = client.get_monitor(added["uid"])

    assert monitor["uid"] == added["uid"]
    assert monitor["collectionUid"] == collection_uid
    assert monitor["schedule"] == {"cron": "*/5 * * * *", "timezone": "Europe/Paris"}
    assert monitor["options"]["strictSSL"] is True
    assert "retry" in monitor and "notificationLimit" in monitor


def test_unknown_monitor_is_not_found_naming_the_uid(
    fake: FakePostman, client: PostmanClient
) -> None:
    with pytest.raises(PostmanNotFoundError) as caught:
        client.get_monitor("1-missing")

    assert "monitor '1-missing'" in str(caught.value)
    assert caught.value.status == 404
    assert len(fake.requests) == 1  # not retried


# -- collections and environments ------------------------------------------------------


def test_get_collection_unwraps_the_collection(fake: FakePostman, client: PostmanClient) -> None:
    uid = fake.add_collection(name="Orders")

    collection = client.get_collection(uid)

    assert set(collection) >= {"info", "item"}
    assert collection["info"]["name"] == "Orders"
    assert collection["info"]["updatedAt"]
    assert collection["item"][0]["name"] == "Health"


def test_missing_collection_400_is_not_found_naming_the_uid(
    fake: FakePostman, client: PostmanClient
) -> None:
    with pytest.raises(PostmanNotFoundError) as caught:
        client.get_collection("1-nope")

    message = str(caught.value)
    assert "collection '1-nope'" in message
    assert "instanceNotFoundError" in message
    assert caught.value.status == 400
    assert caught.value.error_name == "instanceNotFoundError"
    assert len(fake.requests) == 1


def test_get_environment_unwraps_and_missing_is_not_found(
    fake: FakePostman, client: PostmanClient
) -> None:
    uid = fake.add_environment("Staging", {"host": "127.0.0.1"})

    environment = client.get_environment(uid)

    assert environment["name"] == "Staging"
    assert environment["values"] == [
        {"key": "host", "value": "127.0.0.1", "enabled": True, "type": "default"}
    ]
    with pytest.raises(PostmanNotFoundError, match="environment '1-gone'"):
        client.get_environment("1-gone")


def test_an_empty_uid_is_an_input_error_without_a_call(
    fake: FakePostman, client: PostmanClient
) -> None:
    with pytest.raises(InputError, match="collection uid"):
        client.get_collection("  ")
    assert fake.requests == []


def test_cached_collection_is_refetched_only_when_updated_at_changes(
    fake: FakePostman, client: PostmanClient
) -> None:
    uid = fake.add_collection(name="Orders")
    cache: dict[str, dict[str, Any]] = {}

    first = client.get_collection_cached(uid, cache, updated_at=client.collection_updated_at()[uid])
    stamps = client.collection_updated_at()
    fake.clear_requests()
    again = client.get_collection_cached(uid, cache, updated_at=stamps[uid])
    assert again is first
    assert fake.requests == []

    fake.edit_collection(uid, {"info": {"name": "Orders v2"}, "item": []})
    new_stamp = client.collection_updated_at()[uid]
    assert new_stamp != stamps[uid]
    fresh = client.get_collection_cached(uid, cache, updated_at=new_stamp)
    assert fresh["info"]["name"] == "Orders v2"
    assert cache[uid] is fresh
    assert len(fake.requests_to(f"/collections/{uid}")) == 1


# -- the key --------------------------------------------------------------------------


def test_every_call_carries_the_api_key(fake: FakePostman, client: PostmanClient) -> None:
    uid = fake.add_collection()
    client.list_monitors()
    client.get_collection(uid)
    client.collection_updated_at()

    assert len(fake.requests) == 3
    assert all(call.headers["x-api-key"] == fake.api_key for call in fake.requests)


def test_wrong_key_is_an_auth_error_that_never_shows_the_key(
    fake: FakePostman, fake_time: FakeTime
) -> None:
    wrong_key = "PMAK-wrong-secret-key-0000"
    client = make_client(fake, fake_time, api_key=wrong_key)

    with pytest.raises(PostmanAuthError) as caught:
        client.list_monitors()

    assert "401" in str(caught.value)
    assert "AuthenticationError: Invalid API Key" in str(caught.value)
    assert wrong_key not in str(caught.value)
    assert wrong_key not in repr(client)
    assert len(fake.requests) == 1  # not retried


def test_key_echoed_by_the_server_is_redacted_from_errors_and_logs(
    fake: FakePostman, client: PostmanClient, caplog: pytest.LogCaptureFixture
) -> None:
    echo = f"<html>proxy error for key {fake.api_key}</html>".encode()
    fake.malformed_next(1, 502, body=echo)
    fake.malformed_next(1, 200, body=echo)
    caplog.set_level(logging.DEBUG, logger="pmrunner.postman")

    with pytest.raises(PostmanResponseError) as caught:
        client.list_monitors()

    assert fake.api_key not in str(caught.value)
    assert "<redacted>" in str(caught.value)
    assert fake.api_key not in caplog.text
    assert "retry 1 of 4" in caplog.text


# -- rate limits and retries ----------------------------------------------------------


def test_429_waits_retry_after_seconds_then_succeeds(
    fake: FakePostman, client: PostmanClient, fake_time: FakeTime
) -> None:
    fake.add_monitor()
    fake.rate_limit_next(1, retry_after="7")

    assert len(client.list_monitors()) == 1
    assert fake_time.sleeps == [7.0]
    assert len(fake.requests) == 2


def test_429_waits_until_a_retry_after_date(
    fake: FakePostman, client: PostmanClient, fake_time: FakeTime
) -> None:
    fake.rate_limit_next(1, retry_after=email.utils.formatdate(WALL_NOW + 30, usegmt=True))

    client.list_monitors()

    assert fake_time.sleeps == [30.0]


def test_429_reads_postman_rate_limit_headers(
    fake: FakePostman, client: PostmanClient, fake_time: FakeTime
) -> None:
    fake.fail_next(1, 429, headers={"X-RateLimit-RetryAfter": "3"})
    fake.fail_next(1, 429, headers={"X-RateLimit-Reset": str(int(WALL_NOW) + 12)})

    client.list_monitors()

    assert fake_time.sleeps == [3.0, 12.0]


def test_429_that_persists_raises_a_rate_limit_error(
    fake: FakePostman, fake_time: FakeTime
) -> None:
    client = make_client(fake, fake_time, max_retries=2)
    fake.rate_limit_next(5, retry_after="4")

    with pytest.raises(PostmanRateLimitError) as caught:
        client.list_monitors()

    assert caught.value.retry_after == 4.0
    assert "429" in str(caught.value) and "rateLimited" in str(caught.value)
    assert fake_time.sleeps == [4.0, 4.0]
    assert len(fake.requests) == 3


def test_429_asking_for_too_long_a_wait_raises_at_once(
    fake: FakePostman, fake_time: FakeTime
) -> None:
    client = make_client(fake, fake_time, max_retry_after=60.0)
    fake.rate_limit_next(1, retry_after="3600")

    with pytest.raises(PostmanRateLimitError) as caught:
        client.list_monitors()

    assert caught.value.retry_after == 3600.0
    assert fake_time.sleeps == []
    assert len(fake.requests) == 1


def test_fake_server_rate_limit_is_honoured(fake_time: FakeTime) -> None:
    with FakePostman(per_minute_limit=2, clock=fake_time.clock) as limited:
        client = make_client(limited, fake_time)
        for _ in range(3):
            client.list_monitors()

    # The third call is refused until the first leaves the server's minute.
    assert fake_time.sleeps == [60.0]
    assert [call.path for call in limited.requests] == ["/monitors"] * 4


def test_5xx_is_retried_with_exponential_backoff_then_succeeds(
    fake: FakePostman, client: PostmanClient, fake_time: FakeTime
) -> None:
    fake.fail_next(3, 503)

    client.list_monitors()

    assert len(fake.requests) == 4
    first, second, third = fake_time.sleeps
    assert 0.25 <= first <= 0.5
    assert 0.5 <= second <= 1.0
    assert 1.0 <= third <= 2.0


def test_5xx_that_persists_is_unavailable(fake: FakePostman, fake_time: FakeTime) -> None:
    client = make_client(fake, fake_time, max_retries=2)
    fake.fail_next(3, 500)

    with pytest.raises(PostmanUnavailableError) as caught:
        client.list_monitors()

    assert caught.value.status == 500
    assert "GET /monitors?limit=25 answered 500 serverError" in str(caught.value)
    assert len(fake_time.sleeps) == 2


def test_a_timeout_is_retried(fake: FakePostman, fake_time: FakeTime) -> None:
    client = make_client(fake, fake_time, timeout=0.3)
    uid = fake.add_collection(name="Slow")
    fake.slow_next(1, delay=3.0)

    assert client.get_collection(uid)["info"]["name"] == "Slow"
    assert len(fake.requests) == 2
    assert len(fake_time.sleeps) == 1


def test_a_body_cut_short_is_retried(
    fake: FakePostman, client: PostmanClient, fake_time: FakeTime
) -> None:
    uid = fake.add_collection(name="Whole")
    fake.truncate_next(1)

    assert client.get_collection(uid)["info"]["name"] == "Whole"
    assert len(fake.requests) == 2
    assert len(fake_time.sleeps) == 1


def test_server_down_is_unavailable_after_retries_and_up_again_works(
    fake: FakePostman, fake_time: FakeTime
) -> None:
    client = make_client(fake, fake_time, max_retries=3)
    fake.go_down()

    with pytest.raises(PostmanUnavailableError, match="could not connect"):
        client.list_monitors()
    assert len(fake_time.sleeps) == 3

    fake.come_up()
    assert client.list_monitors() == []


def test_a_malformed_success_body_names_endpoint_and_status(
    fake: FakePostman, client: PostmanClient
) -> None:
    fake.malformed_next(1, 200, body=b"<html>maintenance</html>", path="/environments")

    with pytest.raises(PostmanResponseError) as caught:
        client.get_environment("1-env")

    message = str(caught.value)
    assert "GET /environments/1-env answered 200" in message
    assert "not JSON (text/html)" in message
    assert "maintenance" in message
    assert len(fake.requests) == 1


def test_problem_json_errors_are_read(fake: FakePostman, client: PostmanClient) -> None:
    problem = {
        "type": "https://api.postman.com/problems/bad-request",
        "title": "Malformed request",
        "detail": "The limit parameter is invalid",
        "status": 400,
    }
    fake.fail_next(1, 400, body=problem, content_type="application/problem+json")

    with pytest.raises(PostmanApiError) as caught:
        client.list_monitors()

    assert "answered 400 Malformed request: The limit parameter is invalid" in str(caught.value)
    assert not isinstance(caught.value, PostmanNotFoundError)


def test_a_redirect_is_not_followed(fake: FakePostman, client: PostmanClient) -> None:
    fake.fail_next(1, 302, headers={"Location": "http://127.0.0.3:9/elsewhere"})

    with pytest.raises(PostmanResponseError, match="not followed"):
        client.list_monitors()
    assert len(fake.requests) == 1


# -- client-side throttling -------------------------------------------------------------


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


# -- settings and proxies ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("api_key", "options", "message"),
    [
        ("", {}, "API key is empty"),
        ("PMAK-x", {"base_url": "ftp://example"}, "base_url must be an http"),
        ("PMAK-x", {"requests_per_minute": 0}, "at least 1 call"),
        ("PMAK-x", {"timeout": 0}, "timeout must be positive"),
    ],
)
def test_bad_settings_are_configuration_errors(
    api_key: str, options: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigurationError, match=message):
        PostmanClient(api_key, **options)


def test_proxy_carries_every_call(fake: FakePostman, fake_time: FakeTime) -> None:
    # Nothing listens at the base URL; only the proxy (the fake) can answer.
    client = make_client(fake, fake_time, base_url="http://127.0.0.2:9", proxy=fake.url)

    assert client.list_monitors() == []
    assert fake.requests[0].target.startswith("http://127.0.0.2:9/monitors?")


def test_explicit_proxy_wins_over_the_environment(
    fake: FakePostman, fake_time: FakeTime, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")  # nothing listens there
    client = make_client(
        fake, fake_time, base_url="http://127.0.0.2:9", proxy=fake.url, max_retries=0
    )

    assert client.list_monitors() == []


def test_environment_proxy_applies_without_an_explicit_one(
    fake: FakePostman, fake_time: FakeTime, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HTTP_PROXY", fake.url)
    client = make_client(fake, fake_time, base_url="http://127.0.0.2:9", max_retries=0)

    assert client.list_monitors() == []
    assert fake.requests[0].target.startswith("http://127.0.0.2:9/")
