"""Local monitors (monitors.yaml), the monitor model, and local variable overrides."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

import pytest

from pmrunner.errors import CollectionFormatError, ConfigurationError
from runtime.loading import VariableFile
from scheduler.local_source import LocalMonitorSource, read_monitors_file
from scheduler.monitors import Monitor, MonitorOptions, MonitorSource
from scheduler.schedule import Schedule
from scheduler.secrets import SecretOverrides

COLLECTION: dict[str, Any] = {
    "info": {
        "name": "Orders",
        "schema": "https://schema.getpostman.com/json/collection/v2.1.0/collection.json",
    },
    "item": [{"name": "Health", "request": {"method": "GET", "url": "http://127.0.0.1:9/health"}}],
}
ENVIRONMENT: dict[str, Any] = {
    "id": "env-1",
    "name": "prod",
    "values": [
        {"key": "baseUrl", "value": "http://127.0.0.1:9", "type": "default", "enabled": True},
        {"key": "apiKey", "value": "from-file", "type": "secret", "enabled": True},
    ],
}

FULL_MONITOR = """\
monitors:
  - name: Orders API health
    collection: collections/orders.postman_collection.json
    environment: envs/prod.postman_environment.json
    schedule: {cron: "*/5 * * * *", timezone: Europe/Berlin}
    options: {strictSSL: false, followRedirects: false, requestTimeout: 5000, requestDelay: 10}
    network: b
    webhooks: [https://hooks.internal.example/pmrunner]
    retry: {attempts: 1}
    notificationLimit: 3
    active: true
    resendUnsafe: true
    uid: orders-health
"""

MINIMAL_MONITOR = """\
monitors:
  - name: Orders API health
    collection: collections/orders.postman_collection.json
    schedule: {every: 5m}
"""


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    (tmp_path / "collections").mkdir()
    (tmp_path / "envs").mkdir()
    (tmp_path / "collections" / "orders.postman_collection.json").write_text(json.dumps(COLLECTION))
    (tmp_path / "envs" / "prod.postman_environment.json").write_text(json.dumps(ENVIRONMENT))
    return tmp_path


def write(folder: Path, text: str) -> Path:
    path = folder / "monitors.yaml"
    path.write_text(text)
    return path


def rewrite(path: Path, text: str) -> None:
    """Write and move the modification time on, so the change shows on any file system."""
    before = path.stat().st_mtime_ns
    path.write_text(text)
    os.utime(path, ns=(before + 2_000_000_000, before + 2_000_000_000))


def monitor_error(folder: Path, text: str) -> str:
    with pytest.raises(ConfigurationError) as raised:
        read_monitors_file(write(folder, text))
    return str(raised.value)


# -- reading monitors.yaml -----------------------------------------------------------------------


def test_every_field_is_read(folder: Path) -> None:
    (monitor,) = read_monitors_file(write(folder, FULL_MONITOR))
    assert monitor.uid == "orders-health"
    assert monitor.name == "Orders API health"
    assert monitor.source == "local"
    assert monitor.schedule == Schedule.from_cron("*/5 * * * *", "Europe/Berlin")
    assert monitor.collection == str(folder / "collections" / "orders.postman_collection.json")
    assert monitor.environment == str(folder / "envs" / "prod.postman_environment.json")
    assert monitor.options == MonitorOptions(False, False, 5000, 10)
    assert monitor.network == "b"
    assert monitor.webhooks == ("https://hooks.internal.example/pmrunner",)
    assert (monitor.retry_attempts, monitor.notification_limit, monitor.active) == (1, 3, True)
    assert monitor.resend_unsafe is True
    assert len(monitor.version) == 16


def test_defaults_and_uid_from_the_name(folder: Path) -> None:
    (monitor,) = read_monitors_file(write(folder, MINIMAL_MONITOR))
    assert monitor.uid == "orders-api-health"
    assert monitor.schedule == Schedule.every(300)
    assert monitor.environment is None
    assert monitor.options == MonitorOptions()
    assert (monitor.retry_attempts, monitor.notification_limit) == (0, 1)
    assert (monitor.network, monitor.webhooks, monitor.active) == (None, (), True)
    assert monitor.resend_unsafe is None  # the runner's PMRUNNER_RESEND_UNSAFE decides


def test_empty_file_has_no_monitors(folder: Path) -> None:
    assert read_monitors_file(write(folder, "")) == []
    assert read_monitors_file(write(folder, "monitors: []\n")) == []


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            ("*/5 * * * *", "61 * * * *"),
            "monitor 'Orders API health': schedule.cron: cron expression '61 * * * *' is not valid",
        ),
        (
            ("Europe/Berlin", "Mars/Olympus"),
            "monitor 'Orders API health': schedule.timezone: time zone 'Mars/Olympus'",
        ),
        (("strictSSL: false", "strictSSL: nope"), "options.strictSSL: must be true or false"),
        (("requestTimeout: 5000", "requestTimeout: -1"), "options.requestTimeout: must be a whole"),
        (("network: b", "network: b c"), "network: 'b c' must be letters"),
        (("https://hooks", "ftp://hooks"), "webhooks[0]: 'ftp://hooks.internal.example/pmrunner'"),
        (("attempts: 1", "attempts: two"), "retry.attempts: must be a whole number"),
        (("uid: orders-health", "uid: 'orders:health'"), "uid: 'orders:health' must start"),
        (("envs/prod", "envs/missing"), "environment: no such file"),
        (("active: true", "active: yes please"), "active: must be true or false"),
        (("resendUnsafe: true", "resendUnsafe: 1"), "resendUnsafe: must be true or false"),
    ],
)
def test_errors_name_the_file_the_monitor_and_the_field(
    folder: Path, change: tuple[str, str], expected: str
) -> None:
    message = monitor_error(folder, FULL_MONITOR.replace(*change))
    assert message.startswith(f"{folder / 'monitors.yaml'}: ")
    assert expected in message


def test_unknown_fields_are_refused_with_a_suggestion(folder: Path) -> None:
    message = monitor_error(folder, MINIMAL_MONITOR.replace("schedule:", "schedul:"))
    assert "monitor 'Orders API health': unknown field 'schedul'" in message
    assert "did you mean 'schedule'?" in message
    nested = monitor_error(folder, FULL_MONITOR.replace("strictSSL", "strictSsl"))
    assert "options: unknown field 'strictSsl' (did you mean 'strictSSL'?)" in nested
    top = monitor_error(folder, "monitor:\n  - name: x\n")
    assert "unknown field 'monitor' (did you mean 'monitors'?)" in top


def test_keys_given_twice_are_refused(folder: Path) -> None:
    message = monitor_error(folder, MINIMAL_MONITOR + "    schedule: {every: 1m}\n")
    assert "key 'schedule' given twice" in message


def test_duplicate_uids_are_refused(folder: Path) -> None:
    second = MINIMAL_MONITOR.split("\n", 1)[1].replace("Orders API health", "Orders API  Health")
    message = monitor_error(folder, MINIMAL_MONITOR + second)
    assert "uid 'orders-api-health' is already used by monitor 'Orders API health'" in message


def test_missing_required_fields(folder: Path) -> None:
    message = monitor_error(
        folder, "monitors:\n  - collection: x.json\n    schedule: {every: 60}\n"
    )
    assert "monitor #1: name: missing" in message
    message = monitor_error(folder, MINIMAL_MONITOR.replace("    schedule: {every: 5m}\n", ""))
    assert "monitor 'Orders API health': schedule: missing" in message
    both = monitor_error(folder, MINIMAL_MONITOR.replace("{every: 5m}", "{every: 5m, cron: '*'}"))
    assert "give exactly one of 'cron' and 'every'" in both
    bad_every = monitor_error(folder, MINIMAL_MONITOR.replace("5m", "5 weeks"))
    assert "schedule.every: interval '5 weeks'" in bad_every


def test_broken_yaml_is_reported_with_its_position(folder: Path) -> None:
    message = monitor_error(folder, "monitors:\n  - name: [unclosed\n")
    assert "not valid YAML" in message
    assert "line" in message


# -- the source: reloading -----------------------------------------------------------------------


def test_source_reloads_when_the_file_changes(folder: Path) -> None:
    path = write(folder, MINIMAL_MONITOR)
    source = LocalMonitorSource(path)
    assert isinstance(source, MonitorSource)
    first = source.monitors()
    assert [monitor.schedule.every_seconds for monitor in first] == [300]
    rewrite(path, MINIMAL_MONITOR.replace("5m", "1m"))
    (edited,) = source.monitors()
    assert edited.schedule.every_seconds == 60
    assert edited.version != first[0].version
    assert source.healthy and source.last_error is None


def test_bad_edit_keeps_the_last_good_list_and_logs_once(
    folder: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = write(folder, MINIMAL_MONITOR)
    source = LocalMonitorSource(path)
    good = source.monitors()
    rewrite(path, MINIMAL_MONITOR.replace("5m", "5 weeks"))
    with caplog.at_level(logging.WARNING, logger="pmrunner.scheduler"):
        for _ in range(3):
            assert source.monitors() == good
    assert not source.healthy
    assert source.last_error is not None and "schedule.every" in source.last_error
    assert len([record for record in caplog.records if "schedule.every" in record.message]) == 1
    rewrite(path, MINIMAL_MONITOR.replace("5m", "10m"))
    (fixed,) = source.monitors()
    assert fixed.schedule.every_seconds == 600
    assert source.healthy and source.last_error is None


def test_deleted_file_keeps_the_last_good_list(folder: Path) -> None:
    path = write(folder, MINIMAL_MONITOR)
    source = LocalMonitorSource(path)
    good = source.monitors()
    path.unlink()
    assert source.monitors() == good
    assert source.last_error == f"{path}: no such file"


def test_a_bad_file_at_start_is_an_error(folder: Path) -> None:
    with pytest.raises(ConfigurationError, match="no such file"):
        LocalMonitorSource(folder / "absent.yaml")
    with pytest.raises(ConfigurationError, match=r"schedule\.cron"):
        LocalMonitorSource(write(folder, FULL_MONITOR.replace("*/5", "*/0")))


# -- the source: collections and environments --------------------------------------------------


def test_collection_is_read_and_reread_after_an_edit(folder: Path) -> None:
    source = LocalMonitorSource(write(folder, FULL_MONITOR))
    (monitor,) = source.monitors()
    collection = source.collection(monitor)
    assert collection["info"]["name"] == "Orders"
    collection["info"]["name"] = "changed by a caller"
    assert source.collection(monitor)["info"]["name"] == "Orders"
    edited = {**COLLECTION, "info": {**COLLECTION["info"], "name": "Orders v2"}}
    file = Path(monitor.collection)
    rewrite(file, json.dumps({"collection": edited}))  # the API's wrapper is taken off too
    assert source.collection(monitor)["info"]["name"] == "Orders v2"


def test_broken_collection_names_the_file(folder: Path) -> None:
    source = LocalMonitorSource(write(folder, FULL_MONITOR))
    (monitor,) = source.monitors()
    rewrite(Path(monitor.collection), "{not json")
    with pytest.raises(CollectionFormatError, match=r"orders\.postman_collection\.json"):
        source.collection(monitor)


def test_environment_gets_the_overrides(folder: Path) -> None:
    overrides = SecretOverrides.load(None, {"PMRUNNER_VAR_apiKey": "from-env"})
    source = LocalMonitorSource(write(folder, FULL_MONITOR), overrides=overrides)
    (monitor,) = source.monitors()
    environment = source.environment(monitor)
    assert environment is not None
    assert values(environment)["apiKey"] == ("from-env", "secret")
    assert values(environment)["baseUrl"] == ("http://127.0.0.1:9", "default")
    without = LocalMonitorSource(write(folder, MINIMAL_MONITOR)).monitors()[0]
    assert LocalMonitorSource(folder / "monitors.yaml").environment(without) is None


# -- the monitor model ---------------------------------------------------------------------------


def test_monitor_round_trips_through_json(folder: Path) -> None:
    (monitor,) = read_monitors_file(write(folder, FULL_MONITOR))
    data = json.loads(json.dumps(monitor.to_dict()))
    assert Monitor.from_dict(data) == monitor


def test_monitor_version_follows_the_definition() -> None:
    def make(**changes: Any) -> Monitor:
        fields: dict[str, Any] = {
            "uid": "m",
            "name": "M",
            "schedule": Schedule.every(60),
            "source": "local",
            "collection": "/c.json",
            "environment": None,
        }
        return Monitor(**{**fields, **changes})

    assert make().version == make().version
    assert make().version != make(schedule=Schedule.every(120)).version
    assert make().version != make(options=MonitorOptions(strict_ssl=False)).version
    assert (
        len({make().version, make(resend_unsafe=True).version, make(resend_unsafe=False).version})
        == 3
    )
    assert (
        "resend_unsafe" not in make().to_dict()
    )  # a monitor that does not choose keeps its digest
    with pytest.raises(ConfigurationError, match="source must be one of postman, local"):
        make(source="ftp")
    with pytest.raises(ConfigurationError, match="unknown field"):
        Monitor.from_dict({**make().to_dict(), "colour": "red"})


# -- overrides -----------------------------------------------------------------------------------


def values(environment: VariableFile) -> dict[str, tuple[Any, Any]]:
    return {entry["key"]: (entry.get("value"), entry.get("type")) for entry in environment.values}


def test_overrides_file_and_environment_variables_with_precedence(tmp_path: Path) -> None:
    file = tmp_path / "secrets.yaml"
    file.write_text(
        "'*':\n  shared: star\n  region: eu\n  port: 8443\n"
        "orders-health:\n  shared: monitor\n  enabled: true\n"
    )
    overrides = SecretOverrides.load(file, {"PMRUNNER_VAR_region": "env", "OTHER": "x"})
    assert overrides.for_monitor("orders-health") == {
        "shared": "monitor",
        "region": "env",
        "port": "8443",
        "enabled": "true",
    }
    assert overrides.for_monitor("another") == {"shared": "star", "region": "env", "port": "8443"}
    assert "star" not in repr(overrides)


def test_apply_replaces_keeps_types_and_adds_secrets() -> None:
    overrides = SecretOverrides({"m": {"apiKey": "new", "baseUrl": "http://127.0.0.1:8", "x": "1"}})
    original = VariableFile(
        name="prod", id="env-1", values=[dict(v) for v in ENVIRONMENT["values"]]
    )
    applied = overrides.apply("m", original)
    assert applied is not None
    assert values(applied) == {
        "apiKey": ("new", "secret"),
        "baseUrl": ("http://127.0.0.1:8", "default"),
        "x": ("1", "secret"),
    }
    assert (applied.name, applied.id) == ("prod", "env-1")
    assert original.values[1]["value"] == "from-file"  # the input is left alone
    assert overrides.apply("other", None) is None
    created = overrides.apply("m", None)
    assert created is not None and values(created)["x"] == ("1", "secret")


def test_vault_secrets_need_an_override() -> None:
    environment = VariableFile(
        name="prod",
        id=None,
        values=[
            {"key": "token", "source": {"type": "vault"}, "type": "secret", "enabled": True},
            {"key": "auth", "value": "Bearer {{vault:api-token}}", "type": "default"},
            {"key": "old", "value": "{{vault:unused}}", "enabled": False},
        ],
    )
    with pytest.raises(ConfigurationError) as raised:
        SecretOverrides().apply("orders-health", environment)
    assert str(raised.value).startswith(
        "monitor 'orders-health': variable 'token' is a vault secret; set an override"
    )
    assert "PMRUNNER_VAR_token" in str(raised.value)
    partly = SecretOverrides({"*": {"token": "t0k"}})
    with pytest.raises(ConfigurationError, match="variable 'auth' is a vault secret"):
        partly.apply("orders-health", environment)
    complete = SecretOverrides({"*": {"token": "t0k"}}, {"auth": "Bearer abc"})
    applied = complete.apply("orders-health", environment)
    assert applied is not None
    assert values(applied)["token"] == ("t0k", "secret")
    assert values(applied)["auth"] == ("Bearer abc", "secret")
    assert "source" not in applied.values[0]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("- a\n- b\n", "expected a mapping of monitor uid"),
        ("m: [1, 2]\n", "'m': expected a mapping of variable to value"),
        ("m:\n  key: {nested: 1}\n", "variable 'key' must be text"),
        ("m: {key: [unclosed\n", "not valid YAML or JSON"),
    ],
)
def test_bad_overrides_file_is_named(tmp_path: Path, text: str, expected: str) -> None:
    file = tmp_path / "secrets.yaml"
    file.write_text(text)
    with pytest.raises(ConfigurationError) as raised:
        SecretOverrides.load(file, {})
    assert str(raised.value).startswith(f"{file}: ")
    assert expected in str(raised.value)


def test_overrides_file_may_be_json(tmp_path: Path) -> None:
    file = tmp_path / "secrets.json"
    file.write_text(json.dumps({"m": {"apiKey": "k", "retries": 3}}))
    assert SecretOverrides.load(file, {}).for_monitor("m") == {"apiKey": "k", "retries": "3"}
