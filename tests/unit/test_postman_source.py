"""PostmanMonitorSource against the fake Postman API, over real HTTP on loopback."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterator
from typing import Any

import pytest

from pmrunner.errors import ConfigurationError, PostmanApiError
from scheduler.monitors import MonitorOptions, MonitorSource
from scheduler.postman import PostmanClient
from scheduler.postman_source import MonitorSelection, PostmanMonitorSource, monitor_from_postman
from scheduler.schedule import Schedule
from scheduler.secrets import SecretOverrides
from tests.fakes import FakePostman


class FakeTime:
    """A monotonic clock that moves only when slept on, so retries and throttling take no time."""

    def __init__(self) -> None:
        self.now = 1000.0

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture(autouse=True)
def _no_proxy_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    # A proxy set on the machine must not divert these loopback calls.
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)


@pytest.fixture
def fake() -> Iterator[FakePostman]:
    with FakePostman() as server:
        yield server


@pytest.fixture
def client(fake: FakePostman) -> Iterator[PostmanClient]:
    time = FakeTime()
    with PostmanClient(
        fake.api_key,
        base_url=fake.url,
        timeout=5.0,
        max_retries=1,
        sleep=time.sleep,
        clock=time.clock,
    ) as postman:
        yield postman


def source_for(
    client: PostmanClient, overrides: SecretOverrides | None = None, **selection: Any
) -> PostmanMonitorSource:
    return PostmanMonitorSource(client, MonitorSelection(**selection), overrides)


def names(source: PostmanMonitorSource) -> list[str]:
    return sorted(monitor.name for monitor in source.monitors())


# -- selection ---------------------------------------------------------------------------------


def test_selection_by_uid_workspace_and_marker(fake: FakePostman, client: PostmanClient) -> None:
    collection = fake.add_collection(name="C")
    picked = fake.add_monitor("picked by uid", collection_uid=collection, workspace="ws-other")
    fake.add_monitor("Orders [pmrunner]", collection_uid=collection, workspace="ws-a")
    fake.add_monitor("Billing [PMRunner]", collection_uid=collection, workspace="ws-b")
    fake.add_monitor("Cloud only", collection_uid=collection, workspace="ws-a")

    assert names(source_for(client, uids=(picked["uid"],))) == ["picked by uid"]
    assert names(source_for(client, workspace="ws-a")) == ["Cloud only", "Orders [pmrunner]"]
    assert names(source_for(client, name_marker="[pmrunner]")) == [
        "Billing [PMRunner]",
        "Orders [pmrunner]",
    ]
    combined = source_for(client, uids=(picked["uid"],), workspace="ws-a", name_marker="[pmrunner]")
    assert names(combined) == ["Orders [pmrunner]", "picked by uid"]


def test_selection_needs_a_criterion() -> None:
    with pytest.raises(ConfigurationError, match="give monitor uids, a workspace or a name marker"):
        MonitorSelection()
    with pytest.raises(ConfigurationError, match="uids must be non-empty"):
        MonitorSelection(uids=("",))


def test_unknown_uid_is_left_out_with_one_warning(
    fake: FakePostman, client: PostmanClient, caplog: pytest.LogCaptureFixture
) -> None:
    source = source_for(client, uids=("12345678-does-not-exist",))
    with caplog.at_level(logging.WARNING, logger="pmrunner.scheduler"):
        source.refresh()
        source.refresh()
    assert source.monitors() == []
    assert source.healthy
    assert len([r for r in caplog.records if "does not exist" in r.message]) == 1


# -- mapping -----------------------------------------------------------------------------------


def test_postman_fields_become_monitor_fields(fake: FakePostman, client: PostmanClient) -> None:
    collection = fake.add_collection(name="C")
    environment = fake.add_environment("E", {"baseUrl": "http://127.0.0.1:9"})
    fake.add_monitor(
        "Orders",
        collection_uid=collection,
        environment_uid=environment,
        cron="*/5 * * * *",
        timezone="Europe/Berlin",
        options={
            "strictSSL": False,
            "followRedirects": False,
            "requestTimeout": 3000,
            "requestDelay": 50,
        },
        retry={"attempts": 2},
        notificationLimit=4,
        uid="12345678-orders",
    )
    source = source_for(client, workspace="ws-default")
    assert isinstance(source, MonitorSource)
    (monitor,) = source.monitors()
    assert monitor.uid == "12345678-orders"
    assert monitor.source == "postman"
    assert monitor.schedule == Schedule.from_cron("*/5 * * * *", "Europe/Berlin")
    assert (monitor.collection, monitor.environment) == (collection, environment)
    assert monitor.options == MonitorOptions(False, False, 3000, 50)
    assert (monitor.retry_attempts, monitor.notification_limit, monitor.active) == (2, 4, True)


def test_nulls_take_the_defaults() -> None:
    monitor = monitor_from_postman(
        {
            "uid": "1-m",
            "name": "M",
            "collectionUid": "1-c",
            "environmentUid": None,
            "schedule": {"cron": "0 * * * *", "timezone": None},
            "options": {"requestTimeout": None, "strictSSL": None},
            "retry": None,
            "notificationLimit": None,
        }
    )
    assert monitor.schedule == Schedule.from_cron("0 * * * *", "UTC")
    assert monitor.options == MonitorOptions()
    assert (monitor.environment, monitor.retry_attempts, monitor.notification_limit) == (None, 0, 1)


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"schedule": {"cron": "61 * * * *"}}, "schedule.cron: cron expression '61 * * * *'"),
        ({"schedule": {"cron": "* * * * *", "timezone": "Nowhere"}}, "schedule.timezone"),
        ({"collectionUid": None}, "collectionUid: missing"),
        ({"options": {"strictSSL": "yes"}}, "options.strictSSL: expected true or false"),
    ],
)
def test_unreadable_monitors_are_named(fields: dict[str, Any], expected: str) -> None:
    data = {"uid": "1-m", "name": "M", "collectionUid": "1-c", "schedule": {"cron": "* * * * *"}}
    with pytest.raises(ConfigurationError) as raised:
        monitor_from_postman({**data, **fields})
    assert str(raised.value).startswith("Postman monitor '1-m' (M): ")
    assert expected in str(raised.value)


def test_an_unreadable_monitor_is_left_out_and_the_rest_kept(
    fake: FakePostman, client: PostmanClient
) -> None:
    collection = fake.add_collection()
    fake.add_monitor("good", collection_uid=collection)
    bad = fake.add_monitor("bad", collection_uid=collection, cron="not a cron")
    source = source_for(client, workspace="ws-default")
    assert names(source) == ["good"]
    assert source.healthy
    assert "schedule.cron" in source.monitor_errors[bad["uid"]]


# -- changes and outages ------------------------------------------------------------------------


def test_added_edited_and_deactivated_monitors_show_on_the_next_refresh(
    fake: FakePostman, client: PostmanClient
) -> None:
    collection = fake.add_collection()
    first = fake.add_monitor("first", collection_uid=collection)
    source = source_for(client, workspace="ws-default")
    (before,) = source.monitors()

    fake.add_monitor("second", collection_uid=collection)
    fake.edit_monitor(first["uid"], schedule={"cron": "*/10 * * * *", "timezone": "UTC"})
    assert names(source) == ["first"]  # nothing changes before the next poll
    source.refresh()
    by_name = {monitor.name: monitor for monitor in source.monitors()}
    assert sorted(by_name) == ["first", "second"]
    assert by_name["first"].schedule.cron == "*/10 * * * *"
    assert by_name["first"].version != before.version

    fake.deactivate_monitor(first["uid"])
    source.refresh()
    by_name = {monitor.name: monitor for monitor in source.monitors()}
    assert by_name["first"].active is False  # paused monitors stay known

    fake.remove_monitor(first["uid"])
    source.refresh()
    assert names(source) == ["second"]


def test_postman_down_for_several_polls_then_up(
    fake: FakePostman, client: PostmanClient, caplog: pytest.LogCaptureFixture
) -> None:
    collection = fake.add_collection()
    fake.add_monitor("steady", collection_uid=collection)
    source = source_for(client, workspace="ws-default")
    known = source.monitors()
    assert source.healthy

    fake.go_down()
    for _ in range(3):
        source.refresh()
        assert source.monitors() == known
        assert not source.healthy and not source.permanent
    assert source.last_error is not None and "GET /monitors" in source.last_error

    fake.come_up()
    fake.add_monitor("new while down", collection_uid=collection)
    source.refresh()
    assert source.healthy and source.last_error is None
    assert names(source) == ["new while down", "steady"]


def test_rate_limits_do_not_crash_refresh(fake: FakePostman, client: PostmanClient) -> None:
    collection = fake.add_collection()
    fake.add_monitor("limited", collection_uid=collection)
    source = source_for(client, workspace="ws-default")
    known = source.monitors()
    fake.rate_limit_next(10, retry_after="1")
    source.refresh()
    assert not source.healthy
    assert source.last_error is not None and "429" in source.last_error
    assert source.monitors() == known
    fake.clear_faults()
    source.refresh()
    assert source.healthy


def test_server_errors_keep_the_last_known_monitors(
    fake: FakePostman, client: PostmanClient
) -> None:
    collection = fake.add_collection()
    fake.add_monitor("kept", collection_uid=collection)
    source = source_for(client, workspace="ws-default")
    known = source.monitors()
    fake.fail_next(5, 503, path="/monitors")
    source.refresh()
    assert (source.monitors(), source.healthy) == (known, False)
    fake.malformed_next(5, path="/monitors")
    source.refresh()
    assert (source.monitors(), source.healthy) == (known, False)
    fake.clear_faults()
    source.refresh()
    assert source.healthy


# -- collections and environments ---------------------------------------------------------------


def test_unchanged_collection_is_not_downloaded_again(
    fake: FakePostman, client: PostmanClient
) -> None:
    collection = fake.add_collection(name="Cached")
    fake.add_monitor("m", collection_uid=collection)
    source = source_for(client, workspace="ws-default")
    (monitor,) = source.monitors()
    fake.clear_requests()

    assert source.collection(monitor)["info"]["name"] == "Cached"
    assert fake.requests == []  # served from the poll, no call
    source.refresh()
    copy = source.collection(monitor)
    assert len(fake.requests_to(f"/collections/{collection}")) == 0
    copy["info"]["name"] = "changed by a caller"

    fake.edit_collection(collection, {"info": {"name": "Edited"}, "item": []})
    assert source.collection(monitor)["info"]["name"] == "Cached"  # not yet polled
    source.refresh()
    assert source.collection(monitor)["info"]["name"] == "Edited"
    assert len(fake.requests_to(f"/collections/{collection}")) == 1


def test_cached_collection_and_environment_are_served_while_postman_is_down(
    fake: FakePostman, client: PostmanClient
) -> None:
    collection = fake.add_collection(name="Cached")
    environment = fake.add_environment("E", {"baseUrl": "http://127.0.0.1:9"})
    fake.add_monitor("m", collection_uid=collection, environment_uid=environment)
    source = source_for(client, workspace="ws-default")
    (monitor,) = source.monitors()
    source.collection(monitor)
    source.environment(monitor)

    fake.go_down()
    source.refresh()
    assert not source.healthy
    assert source.collection(monitor)["info"]["name"] == "Cached"
    served = source.environment(monitor)
    assert served is not None and served.values[0]["value"] == "http://127.0.0.1:9"
    other = fake.add_collection(name="never fetched")
    fake.add_monitor("n", collection_uid=other)
    unseen = dataclasses.replace(monitor, collection=other, version="")
    with pytest.raises(PostmanApiError, match="has not been fetched"):
        source.collection(unseen)


def test_environment_with_overrides_and_vault_secrets(
    fake: FakePostman, client: PostmanClient
) -> None:
    values = [
        {"key": "baseUrl", "value": "http://127.0.0.1:9", "type": "default", "enabled": True},
        {"key": "token", "type": "secret", "source": {"type": "vault"}, "enabled": True},
    ]
    environment = fake.add_environment("E", values)
    collection = fake.add_collection()
    created = fake.add_monitor("m", collection_uid=collection, environment_uid=environment)

    bare = source_for(client, uids=(created["uid"],))
    (monitor,) = bare.monitors()
    with pytest.raises(ConfigurationError, match="variable 'token' is a vault secret"):
        bare.environment(monitor)

    overrides = SecretOverrides({created["uid"]: {"token": "t0k"}})
    with_overrides = source_for(client, overrides, uids=(created["uid"],))
    with_overrides.monitors()
    resolved = with_overrides.environment(monitor)
    assert resolved is not None
    entries = {entry["key"]: entry for entry in resolved.values}
    assert (entries["token"]["value"], entries["token"]["type"]) == ("t0k", "secret")
    assert entries["baseUrl"]["value"] == "http://127.0.0.1:9"
