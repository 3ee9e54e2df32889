"""Monitors defined in Postman, polled through the Postman API.

Postman's public API cannot assign a monitor to a private runner, so the
runner is told which monitors are its own with a :class:`MonitorSelection`:

- ``uids``: these monitors, whatever their workspace or name;
- ``workspace``: the monitors of this workspace;
- ``name_marker``: the monitors whose name contains this text, ignoring case
  (such as ``[pmrunner]``).

The selection is the listed ``uids``, plus, when a workspace or a marker is
given, every monitor that satisfies both of them (a workspace alone selects
all its monitors; a marker alone selects matching monitors in every
workspace the API key can see). At least one of the three must be given.

Each :meth:`PostmanMonitorSource.refresh` polls the API: one listing of the
monitors (when a workspace or marker is set), one ``GET /monitors/{uid}`` per
selected monitor (the listing carries no schedule), and one listing of the
collections, whose ``updatedAt`` decides whether a cached collection is still
current. So a poll costs 2 + N calls for N monitors; the client's rate limits
pace them. A monitor that was added, edited, paused or removed in Postman
takes effect on the next poll.

While Postman is unreachable or answers errors (rate limits included), a
poll keeps the monitors it knew, sets :attr:`~PostmanMonitorSource.healthy`
to False and :attr:`~PostmanMonitorSource.last_error`, and logs a warning
(once per distinct error); the next good poll recovers. Collections and
environments already fetched are then served from the cache.

From Postman's monitor JSON: ``schedule {cron, timezone}``, ``options
{strictSSL, followRedirects, requestTimeout, requestDelay}``, ``retry
{attempts}``, ``notificationLimit``, ``collectionUid``, ``environmentUid``
and ``active`` become the :class:`~scheduler.monitors.Monitor`'s fields;
absent values take the defaults of :class:`~scheduler.monitors.MonitorOptions`
and :class:`~scheduler.monitors.Monitor`. A monitor that cannot be read
(an invalid cron, no collection) is left out, and reported by
:attr:`~PostmanMonitorSource.monitor_errors` and a warning.
"""

from __future__ import annotations

import copy
import logging
import threading
from dataclasses import dataclass
from typing import Any

from pmrunner.errors import (
    ConfigurationError,
    PostmanApiError,
    PostmanNotFoundError,
    PostmanRateLimitError,
    PostmanUnavailableError,
)
from runtime.loading import VariableFile, variable_file_from_json
from scheduler.monitors import Monitor, MonitorOptions
from scheduler.postman import PostmanClient
from scheduler.schedule import Schedule, load_timezone
from scheduler.secrets import SecretOverrides

__all__ = ["MonitorSelection", "PostmanMonitorSource", "monitor_from_postman"]

logger = logging.getLogger("pmrunner.scheduler")

# Errors after which a cached collection or environment is still worth serving.
_TRANSIENT = (PostmanUnavailableError, PostmanRateLimitError)

_NOT_POLLED = "the Postman API has not been polled yet"


@dataclass(frozen=True)
class MonitorSelection:
    """Which Postman monitors this runner runs; see the module documentation.

    Args:
        uids: monitor uids selected whatever their workspace or name.
        workspace: a workspace id whose monitors are selected.
        name_marker: text a monitor's name must contain (case ignored).

    Raises:
        ConfigurationError: nothing selected, or an empty uid or marker.
    """

    uids: tuple[str, ...] = ()
    workspace: str | None = None
    name_marker: str | None = None

    def __post_init__(self) -> None:
        uids = tuple(self.uids)
        if any(not isinstance(uid, str) or not uid.strip() for uid in uids):
            raise ConfigurationError(f"monitor selection: uids must be non-empty, got {uids!r}")
        object.__setattr__(self, "uids", tuple(uid.strip() for uid in uids))
        for name in ("workspace", "name_marker"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, str) or not value.strip()):
                raise ConfigurationError(f"monitor selection: {name} must be non-empty text")
        if not self.uids and not self.lists_monitors:
            raise ConfigurationError(
                "monitor selection: give monitor uids, a workspace or a name marker"
            )

    @property
    def lists_monitors(self) -> bool:
        """Whether monitors are found by listing them (a workspace or a marker is set)."""
        return self.workspace is not None or self.name_marker is not None

    def name_matches(self, name: Any) -> bool:
        """Whether a monitor called ``name`` passes the marker (always, with no marker)."""
        if self.name_marker is None:
            return True
        return isinstance(name, str) and self.name_marker.casefold() in name.casefold()


class PostmanMonitorSource:
    """Monitors, collections and environments from the Postman API.

    Args:
        client: the Postman API client.
        selection: which monitors are this runner's.
        overrides: local variable values applied to every environment.
    """

    def __init__(
        self,
        client: PostmanClient,
        selection: MonitorSelection,
        overrides: SecretOverrides | None = None,
    ) -> None:
        self._client = client
        self._selection = selection
        self._overrides = overrides or SecretOverrides()
        self._lock = threading.Lock()
        self._polled = False
        self._monitors: list[Monitor] = []
        self._monitor_errors: dict[str, str] = {}
        self._updated_at: dict[str, str] = {}
        self._collections: dict[str, dict[str, Any]] = {}
        self._environments: dict[str, dict[str, Any]] = {}
        self._missing: set[str] = set()
        self._last_error: str | None = _NOT_POLLED

    @property
    def healthy(self) -> bool:
        """False before the first poll and while polls fail."""
        return self._last_error is None

    @property
    def last_error(self) -> str | None:
        """Why the last poll failed; None when it succeeded."""
        return self._last_error

    @property
    def monitor_errors(self) -> dict[str, str]:
        """Monitor uid → why that monitor was left out at the last good poll."""
        return dict(self._monitor_errors)

    def refresh(self) -> None:
        """Poll the API for the selected monitors; never raises for API errors."""
        try:
            raw_monitors = self._fetch_monitors()
            updated_at = self._client.collection_updated_at()
        except PostmanApiError as exc:
            self._record_failure(str(exc))
            return
        monitors, errors = _read_monitors(raw_monitors)
        with self._lock:
            for uid, message in errors.items():
                if self._monitor_errors.get(uid) != message:
                    logger.warning("%s; the monitor is left out", message)
            recovered = self._polled and self._last_error is not None
            self._monitors, self._monitor_errors = monitors, errors
            self._updated_at, self._polled, self._last_error = updated_at, True, None
        if recovered:
            logger.info("Postman API polled again without errors; monitors are up to date")

    def monitors(self) -> list[Monitor]:
        """The monitors of the last good poll (polling first if there was none yet)."""
        if not self._polled and self._last_error == _NOT_POLLED:
            self.refresh()
        with self._lock:
            return list(self._monitors)

    def collection(self, monitor: Monitor) -> dict[str, Any]:
        """The monitor's collection, fetched again only when its ``updatedAt`` changed.

        Served from the cache while Postman is unreachable or rate limiting.

        Raises:
            PostmanApiError: the collection could not be fetched, and none is cached.
        """
        uid = self._own_reference(monitor, monitor.collection)
        try:
            collection = self._client.get_collection_cached(
                uid, self._collections, updated_at=self._updated_at.get(uid)
            )
        except _TRANSIENT as exc:
            collection = self._cached(self._collections, uid, "collection", exc)
        return copy.deepcopy(collection)

    def environment(self, monitor: Monitor) -> VariableFile | None:
        """The monitor's environment (fetched each time), with the overrides applied.

        Served from the last fetched copy while Postman is unreachable or rate limiting.

        Raises:
            PostmanApiError: the environment could not be fetched, and none is cached.
            DataFileError: the answer is not an environment.
            ConfigurationError: a vault reference no override supplies.
        """
        if monitor.environment is None:
            return self._overrides.apply(monitor.uid, None)
        uid = self._own_reference(monitor, monitor.environment)
        try:
            raw = self._client.get_environment(uid)
            self._environments[uid] = raw
        except _TRANSIENT as exc:
            raw = self._cached(self._environments, uid, "environment", exc)
        environment = variable_file_from_json(raw, label=f"Postman environment {uid!r}")
        return self._overrides.apply(monitor.uid, environment)

    # -- polling -----------------------------------------------------------------------

    def _fetch_monitors(self) -> list[dict[str, Any]]:
        """GET /monitors/{uid} for each selected monitor; a uid gone since listing is skipped."""
        found: list[dict[str, Any]] = []
        for uid in self._selected_uids():
            try:
                found.append(self._client.get_monitor(uid))
            except PostmanNotFoundError:
                # Listed monitors may be deleted since; a uid given in the selection
                # is worth one warning.
                if uid in self._selection.uids and uid not in self._missing:
                    logger.warning("Postman monitor %r (selected by uid) does not exist", uid)
                self._missing.add(uid)
            else:
                self._missing.discard(uid)
        return found

    def _selected_uids(self) -> list[str]:
        """The listed uids, then the listed monitors that pass the workspace and marker."""
        uids = list(self._selection.uids)
        if self._selection.lists_monitors:
            for summary in self._client.list_monitors(workspace=self._selection.workspace):
                uid = summary.get("uid") or summary.get("id")
                if (
                    isinstance(uid, str)
                    and uid
                    and self._selection.name_matches(summary.get("name"))
                ):
                    uids.append(uid)
        return list(dict.fromkeys(uids))  # without repeats, in order

    def _record_failure(self, message: str) -> None:
        with self._lock:
            repeated = message == self._last_error
            self._last_error = message
        if repeated:
            logger.debug("Postman API poll failed again: %s", message)
        else:
            logger.warning(
                "Postman API poll failed: %s; the last known monitors stay in use", message
            )

    # -- helpers -----------------------------------------------------------------------

    def _own_reference(self, monitor: Monitor, reference: str) -> str:
        if monitor.source != "postman":
            raise ConfigurationError(
                f"monitor {monitor.uid!r} comes from {monitor.source}, not from the Postman API"
            )
        return reference

    def _cached(
        self, cache: dict[str, dict[str, Any]], uid: str, kind: str, error: PostmanApiError
    ) -> dict[str, Any]:
        cached = cache.get(uid)
        if cached is None:
            raise error
        logger.warning("using the cached %s %r: %s", kind, uid, error)
        return cached


def _read_monitors(raw_monitors: list[dict[str, Any]]) -> tuple[list[Monitor], dict[str, str]]:
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
