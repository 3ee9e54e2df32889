"""Postman's monitor JSON read into :class:`~scheduler.monitors.Monitor` objects.

From ``GET /monitors/{uid}``: ``schedule {cron, timezone}``, ``options
{strictSSL, followRedirects, requestTimeout, requestDelay}``, ``retry
{attempts}``, ``notificationLimit``, ``collectionUid``, ``environmentUid``
and ``active`` become the monitor's fields; absent values take the defaults
of :class:`~scheduler.monitors.MonitorOptions` and
:class:`~scheduler.monitors.Monitor`.
"""

from __future__ import annotations

from typing import Any

from pmrunner.errors import ConfigurationError
from scheduler.monitors import Monitor, MonitorOptions
from scheduler.schedule import Schedule, load_timezone

__all__ = ["monitor_from_postman", "read_monitors"]


def read_monitors(raw_monitors: list[dict[str, Any]]) -> tuple[list[Monitor], dict[str, str]]:
    """Monitors from the API's JSON, and the errors of those that could not be read."""
    monitors: list[Monitor] = []
    errors: dict[str, str] = {}
    for raw in raw_monitors:
        try:
            monitors.append(monitor_from_postman(raw))
        except ConfigurationError as exc:
            errors[str(raw.get("uid") or raw.get("id"))] = str(exc)
    return monitors, errors


def monitor_from_postman(data: dict[str, Any]) -> Monitor:
    """A :class:`Monitor` from the ``monitor`` object of ``GET /monitors/{uid}``.

    Raises:
        ConfigurationError: naming the monitor and the field (``schedule.cron``,
            ``collectionUid``, ...).
    """
    uid = data.get("uid") or data.get("id")
    if not isinstance(uid, str) or not uid:
        raise ConfigurationError(f"Postman monitor without a uid: {data.get('name')!r}")
    raw_name = data.get("name")
    name = raw_name if isinstance(raw_name, str) and raw_name else uid
    label = f"Postman monitor {uid!r} ({name})"
    try:
        return Monitor(
            uid=uid,
            name=name,
            schedule=_schedule(data.get("schedule")),
            source="postman",
            collection=_reference(data, "collectionUid", required=True) or "",
            environment=_reference(data, "environmentUid", required=False),
            options=_options(data.get("options")),
            retry_attempts=_count(_section(data, "retry").get("attempts"), "retry.attempts", 0),
            notification_limit=_count(data.get("notificationLimit"), "notificationLimit", 1),
            active=_flag(data.get("active"), "active", True),
        )
    except ConfigurationError as exc:
        raise ConfigurationError(f"{label}: {exc}") from None


def _schedule(value: Any) -> Schedule:
    if not isinstance(value, dict) or not isinstance(value.get("cron"), str):
        raise ConfigurationError("schedule.cron: missing")
    timezone = value.get("timezone") or "UTC"
    try:
        load_timezone(timezone)
    except ConfigurationError as exc:
        raise ConfigurationError(f"schedule.timezone: {exc}") from None
    try:
        return Schedule(cron=value["cron"], timezone=timezone)
    except ConfigurationError as exc:
        raise ConfigurationError(f"schedule.cron: {exc}") from None


def _reference(data: dict[str, Any], field: str, *, required: bool) -> str | None:
    value = data.get(field)
    if isinstance(value, str) and value:
        return value
    if value in (None, "") and not required:
        return None
    raise ConfigurationError(f"{field}: missing" if value in (None, "") else f"{field}: {value!r}")


def _section(data: dict[str, Any], field: str) -> dict[str, Any]:
    value = data.get(field)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ConfigurationError(f"{field}: expected an object, got {value!r}")
    return value


def _options(value: Any) -> MonitorOptions:
    options = _section({"options": value}, "options")
    return MonitorOptions(
        strict_ssl=_flag(options.get("strictSSL"), "options.strictSSL", True),
        follow_redirects=_flag(options.get("followRedirects"), "options.followRedirects", True),
        request_timeout_ms=_count(options.get("requestTimeout"), "options.requestTimeout", 0),
        request_delay_ms=_count(options.get("requestDelay"), "options.requestDelay", 0),
    )


def _flag(value: Any, field: str, default: bool) -> bool:
    if value is None:
        return default
    if not isinstance(value, bool):
        raise ConfigurationError(f"{field}: expected true or false, got {value!r}")
    return value


def _count(value: Any, field: str, default: int) -> int:
    """A whole number of 0 or more; Postman may send ``null`` for "not set"."""
    if value is None:
        return default
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigurationError(f"{field}: expected a whole number of 0 or more, got {value!r}")
    return value
