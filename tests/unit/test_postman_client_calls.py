"""PostmanClient calls, key handling and settings, against the fake Postman API on loopback."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from pmrunner.errors import (
    ConfigurationError,
    InputError,
    PostmanAuthError,
    PostmanNotFoundError,
    PostmanResponseError,
)
from scheduler.postman import PostmanClient
from tests.fakes import FakePostman

# The *_fixture names are fixtures: pytest finds them under the names their decorators give.
from tests.unit.postman_client_helpers import (  # noqa: F401
    FakeTime,
    client_fixture,
    fake_fixture,
    fake_time_fixture,
    make_client,
    no_proxy_from_environment_fixture,
)

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
