"""PostmanClient retrying rate limits, server errors and bad answers from the fake Postman API."""

from __future__ import annotations

import email.utils

import pytest

from pmrunner.errors import (
    PostmanApiError,
    PostmanNotFoundError,
    PostmanRateLimitError,
    PostmanResponseError,
    PostmanUnavailableError,
)
from scheduler.postman import PostmanClient
from tests.fakes import FakePostman

# The *_fixture names are fixtures: pytest finds them under the names their decorators give.
from tests.unit.postman_client_helpers import (  # noqa: F401
    WALL_NOW,
    FakeTime,
    client_fixture,
    fake_fixture,
    fake_time_fixture,
    make_client,
    no_proxy_from_environment_fixture,
)


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
