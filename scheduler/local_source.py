"""Monitors defined in a local ``monitors.yaml``, next to exported collections.

The file lists monitors under ``monitors``::

    monitors:
      - name: Orders API health                                  # required
        collection: collections/orders.postman_collection.json   # required
        environment: envs/prod.postman_environment.json           # optional
        schedule: {cron: "*/5 * * * *", timezone: Europe/Berlin}  # or {every: 5m}
        options: {strictSSL: true, followRedirects: true, requestTimeout: 5000, requestDelay: 0}
        network: b
        webhooks: [https://hooks.internal.example/pmrunner]
        retry: {attempts: 1}
        resendUnsafe: false
        notificationLimit: 3
        active: true
        uid: orders-health

Fields:

- ``name`` (required): shown in reports.
- ``collection`` (required), ``environment``: Postman exports (collection
  v1/v2.0/v2.1, environment JSON); relative paths are relative to the
  directory of ``monitors.yaml``. Both must exist when the file is read.
- ``schedule`` (required): ``{cron, timezone}`` with a 5-field or 6-field
  (seconds first) cron expression and an IANA time zone (default ``UTC``),
  or ``{every}``: seconds (``300``) or text (``60s``, ``5m``, ``1h``, ``1d``),
  anchored to the Unix epoch. See :mod:`scheduler.schedule` for daylight
  saving time.
- ``options``: ``strictSSL`` (default true), ``followRedirects`` (default
  true), ``requestTimeout`` and ``requestDelay`` in milliseconds (default 0:
  no timeout, no delay).
- ``network``: pins every request to one network (letters, digits, ``-``,
  ``_``); by default each request is routed by its host.
- ``webhooks``: http(s) URLs the run report is posted to.
- ``retry.attempts``: retries of a failed run (default 0).
- ``resendUnsafe``: true sends a POST, PUT, PATCH or DELETE once more when
  the worker that sent it was lost, false never does (reported "outcome
  unknown"); by default the runner's ``PMRUNNER_RESEND_UNSAFE`` decides.
- ``notificationLimit``: failing runs in a row that are notified (default 1).
- ``active``: false pauses the monitor (default true).
- ``uid``: a stable id (letters, digits, ``.``, ``_``, ``-``); by default the
  name in lower case with other characters turned into ``-``
  (``orders-api-health``). Two monitors may not share one.

Unknown fields and duplicate keys are errors, so a typo does not pass
silently. Errors name the file, the monitor and the field::

    monitors.yaml: monitor 'Orders API health': schedule.cron: cron expression ...

The file is read again when it changes (its modification time, size or
inode): each call to :meth:`LocalMonitorSource.monitors` checks. A file that
no longer reads keeps the last good monitors in use; the error is logged once
and reported by :attr:`LocalMonitorSource.last_error` until the file is fixed.
Variables can be overridden with :class:`scheduler.secrets.SecretOverrides`.
"""

from __future__ import annotations

import copy
import difflib
import logging
import re
import threading
from collections.abc import Callable, Hashable
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

from pmrunner.errors import CollectionFormatError, ConfigurationError, InputError
from pmrunner.structured_input import read_yaml
from runtime.collection_upgrade import convert_v1, is_v1_collection
from runtime.loading import VariableFile, load_collection, load_environment, read_json
from scheduler.monitors import Monitor, MonitorOptions
from scheduler.schedule import Schedule, load_timezone, parse_interval
from scheduler.secrets import SecretOverrides

__all__ = ["LocalMonitorSource", "read_monitors_file"]

logger = logging.getLogger("pmrunner.scheduler")

_MONITOR_FIELDS = (
    "name",
    "uid",
    "collection",
    "environment",
    "schedule",
    "options",
    "network",
    "webhooks",
    "retry",
    "notificationLimit",
    "active",
    "resendUnsafe",
)
_OPTION_FIELDS = {
    "strictSSL": "strict_ssl",
    "followRedirects": "follow_redirects",
    "requestTimeout": "request_timeout_ms",
    "requestDelay": "request_delay_ms",
}
_UID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_NETWORK = re.compile(r"^[A-Za-z0-9_-]+$")

_T = TypeVar("_T")
_Stamp = tuple[int, int, int]  # modification time (ns), size, inode


class LocalMonitorSource:
    """Monitors from a ``monitors.yaml`` file; see the module documentation.

    Args:
        path: the monitors file.
        overrides: local variable values applied to every environment.

    Raises:
        ConfigurationError: the file cannot be read or is invalid when first
            read (later bad edits keep the last good monitors instead).
    """

    def __init__(self, path: Path, *, overrides: SecretOverrides | None = None) -> None:
        self._path = Path(path)
        self._overrides = overrides or SecretOverrides()
        self._lock = threading.Lock()
        self._collections: dict[Path, tuple[_Stamp, dict[str, Any]]] = {}
        self._last_error: str | None = None
        self._stamp = _stamp_of(self._path)
        self._monitors = read_monitors_file(self._path)

    @property
    def path(self) -> Path:
        """The monitors file."""
        return self._path

    @property
    def healthy(self) -> bool:
        """False while the file on disk cannot be used."""
        return self._last_error is None

    @property
    def last_error(self) -> str | None:
        """Why the file on disk cannot be used; None when it can."""
        return self._last_error

    def refresh(self) -> None:
        """Read the file again if it changed since it was last read."""
        with self._lock:
            try:
                stamp = _stamp_of(self._path)
            except ConfigurationError as exc:
                self._record_error(str(exc))
                return
            if stamp == self._stamp:
                return
            # Remember the stamp even when the read fails, so a bad edit is
            # read, and logged, once.
            self._stamp = stamp
            try:
                monitors = read_monitors_file(self._path)
            except ConfigurationError as exc:
                self._record_error(str(exc))
                return
            self._monitors = monitors
            if self._last_error is not None:
                logger.info("%s: read again without errors; its monitors are in use", self._path)
            self._last_error = None

    def monitors(self) -> list[Monitor]:
        """The monitors of the file, after reading it again if it changed."""
        self.refresh()
        return list(self._monitors)

    def collection(self, monitor: Monitor) -> dict[str, Any]:
        """The monitor's collection file as v2.x JSON (v1 files are converted).

        Raises:
            CollectionFormatError: naming the file.
        """
        path = self._own_file(monitor, monitor.collection)
        stamp = _stamp_of(path, error=CollectionFormatError)
        with self._lock:
            cached = self._collections.get(path)
        if cached is not None and cached[0] == stamp:
            return copy.deepcopy(cached[1])
        load_collection(path)  # checks the whole collection, naming the file in errors
        data = _unwrapped_collection(read_json(path, error=CollectionFormatError))
        with self._lock:
            self._collections[path] = (stamp, data)
        return copy.deepcopy(data)

    def environment(self, monitor: Monitor) -> VariableFile | None:
        """The monitor's environment file, with the overrides applied.

        Raises:
            DataFileError: the file cannot be read.
            ConfigurationError: a vault reference no override supplies.
        """
        environment = None
        if monitor.environment is not None:
            environment = load_environment(self._own_file(monitor, monitor.environment))
        return self._overrides.apply(monitor.uid, environment)

    def revision(self, monitor: Monitor, version: int) -> Hashable:
        """What a run of ``monitor`` is built from: its files' stamps and its
        overrides (``version``, the catalog's, does not matter here). None when
        a file cannot be read: preparing the run says why."""
        try:
            files = [monitor.collection, monitor.environment]
            stamps = tuple(
                None if file is None else _stamp_of(self._own_file(monitor, file)) for file in files
            )
        except InputError:
            return None
        return stamps, tuple(sorted(self._overrides.for_monitor(monitor.uid).items()))

    def _own_file(self, monitor: Monitor, file: str) -> Path:
        if monitor.source != "local":
            raise ConfigurationError(
                f"monitor {monitor.uid!r} comes from {monitor.source}, not from {self._path}"
            )
        return Path(file)

    def _record_error(self, message: str) -> None:
        if message != self._last_error:
            logger.warning("%s; the last good monitors stay in use", message)
        self._last_error = message


def read_monitors_file(path: Path) -> list[Monitor]:
    """Read and check a ``monitors.yaml``.

    Raises:
        ConfigurationError: naming the file, the monitor and the field.
    """
    data = _load_yaml(path)
    if data is None:
        data = {"monitors": []}
    if not isinstance(data, dict):
        raise ConfigurationError(f"{path}: expected a mapping with a 'monitors' list")
    _reject_unknown(data, ("monitors",), f"{path}")
    entries = data.get("monitors")
    if entries is None:
        return []
    if not isinstance(entries, list):
        raise ConfigurationError(f"{path}: 'monitors' must be a list")
    monitors = [_monitor(path, position, entry) for position, entry in enumerate(entries)]
    _reject_duplicate_uids(path, monitors)
    return monitors


# -- reading the file -------------------------------------------------------------------------


def _load_yaml(path: Path) -> Any:
    return read_yaml(path, unique_keys=True)


def _stamp_of(path: Path, *, error: type[InputError] = ConfigurationError) -> _Stamp:
    try:
        status = path.stat()
    except FileNotFoundError:
        raise error(f"{path}: no such file") from None
    except OSError as exc:
        raise error(f"{path}: cannot be read ({exc.strerror or exc})") from None
    return status.st_mtime_ns, status.st_size, status.st_ino


def _unwrapped_collection(data: Any) -> dict[str, Any]:
    """The collection object itself: without the API's wrapper, v1 converted to v2.1."""
    if isinstance(data, dict) and "info" not in data and isinstance(data.get("collection"), dict):
        data = data["collection"]
    assert isinstance(data, dict)  # load_collection accepted it
    return convert_v1(data) if is_v1_collection(data) else data


# -- one monitor ------------------------------------------------------------------------------


def _monitor(path: Path, position: int, entry: Any) -> Monitor:
    label = f"{path}: monitor #{position + 1}"
    if not isinstance(entry, dict):
        raise ConfigurationError(f"{label}: expected a mapping of fields")
    name = entry.get("name")
    if isinstance(name, str) and name.strip():
        label = f"{path}: monitor {name.strip()!r}"
    _reject_unknown(entry, _MONITOR_FIELDS, label)
    try:
        return _build_monitor(path, entry)
    except ConfigurationError as exc:
        raise ConfigurationError(f"{label}: {exc}") from None


def _build_monitor(path: Path, entry: dict[str, Any]) -> Monitor:
    name = _required(_text(entry, "name", required=True))
    uid = _uid(entry.get("uid"), name)
    base = path.parent
    return Monitor(
        uid=uid,
        name=name,
        schedule=_schedule(entry.get("schedule")),
        source="local",
        collection=_required(_file(base, entry, "collection", required=True)),
        environment=_file(base, entry, "environment", required=False),
        options=_options(entry.get("options")),
        retry_attempts=_retry(entry.get("retry")),
        notification_limit=_count(entry, "notificationLimit", default=1),
        network=_network(entry.get("network")),
        webhooks=_webhooks(entry.get("webhooks")),
        active=_flag(entry, "active", default=True),
        resend_unsafe=_optional_flag(entry, "resendUnsafe"),
    )


def _reject_unknown(mapping: dict[Any, Any], known: tuple[str, ...], label: str) -> None:
    for key in mapping:
        if key not in known:
            close = difflib.get_close_matches(str(key), known, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            allowed = ", ".join(known)
            raise ConfigurationError(f"{label}: unknown field {key!r}{hint}; known: {allowed}")


def _text(entry: dict[str, Any], field: str, *, required: bool) -> str | None:
    value = entry.get(field)
    if value is None:
        if required:
            raise ConfigurationError(f"{field}: missing")
        return None
    if not isinstance(value, str) or not value.strip():
        raise ConfigurationError(f"{field}: must be non-empty text, got {value!r}")
    return value.strip()


def _uid(value: Any, name: str) -> str:
    if value is None:
        slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
        if not slug:
            raise ConfigurationError("uid: cannot be made from the name; set one")
        return slug
    if not isinstance(value, str) or not _UID.match(value):
        raise ConfigurationError(
            f"uid: {value!r} must start with a letter or digit and hold only "
            "letters, digits, '.', '_' and '-'"
        )
    return value


def _required(value: str | None) -> str:
    assert value is not None  # the parser raised for a missing required field
    return value


def _file(base: Path, entry: dict[str, Any], field: str, *, required: bool) -> str | None:
    text = _text(entry, field, required=required)
    if text is None:
        return None
    file = (base / text).resolve()
    if not file.is_file():
        raise ConfigurationError(f"{field}: no such file: {file}")
    return str(file)


def _schedule(value: Any) -> Schedule:
    if value is None:
        raise ConfigurationError(
            "schedule: missing; give {cron: ..., timezone: ...} or {every: ...}"
        )
    if not isinstance(value, dict):
        raise ConfigurationError("schedule: expected {cron: ..., timezone: ...} or {every: ...}")
    _reject_unknown(value, ("cron", "timezone", "every"), "schedule")
    if ("cron" in value) == ("every" in value):
        raise ConfigurationError("schedule: give exactly one of 'cron' and 'every'")
    if "every" in value:
        if "timezone" in value:
            raise ConfigurationError("schedule.timezone: applies to 'cron' only, not to 'every'")
        return Schedule(every_seconds=_with_field("schedule.every", parse_interval, value["every"]))
    timezone = value.get("timezone", "UTC")
    _with_field("schedule.timezone", load_timezone, timezone)
    cron = value["cron"]
    if not isinstance(cron, str):
        raise ConfigurationError(f"schedule.cron: must be text (quote it), got {cron!r}")
    return _with_field("schedule.cron", lambda text: Schedule(cron=text, timezone=timezone), cron)


def _with_field(field: str, parse: Callable[[Any], _T], value: Any) -> _T:
    """Call ``parse(value)``, putting the field's name in front of an error."""
    try:
        return parse(value)
    except ConfigurationError as exc:
        raise ConfigurationError(f"{field}: {exc}") from None


def _options(value: Any) -> MonitorOptions:
    if value is None:
        return MonitorOptions()
    if not isinstance(value, dict):
        raise ConfigurationError("options: expected a mapping")
    _reject_unknown(value, tuple(_OPTION_FIELDS), "options")
    settings: dict[str, Any] = {}
    for field, attribute in _OPTION_FIELDS.items():
        if field not in value:
            continue
        option = value[field]
        if attribute.endswith("_ms"):
            settings[attribute] = _count(value, field, default=0, label=f"options.{field}")
        elif isinstance(option, bool):
            settings[attribute] = option
        else:
            raise ConfigurationError(f"options.{field}: must be true or false, got {option!r}")
    return MonitorOptions(**settings)


def _retry(value: Any) -> int:
    if value is None:
        return 0
    if not isinstance(value, dict):
        raise ConfigurationError("retry: expected a mapping such as {attempts: 1}")
    _reject_unknown(value, ("attempts",), "retry")
    return _count(value, "attempts", default=0, label="retry.attempts")


def _count(entry: dict[str, Any], field: str, *, default: int, label: str | None = None) -> int:
    value = entry.get(field)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigurationError(f"{label or field}: must be a whole number of 0 or more")
    return value


def _flag(entry: dict[str, Any], field: str, *, default: bool) -> bool:
    value = entry.get(field, default)
    if not isinstance(value, bool):
        raise ConfigurationError(f"{field}: must be true or false, got {value!r}")
    return value


def _optional_flag(entry: dict[str, Any], field: str) -> bool | None:
    """A true/false field that may be left out (None: the runner decides)."""
    return None if entry.get(field) is None else _flag(entry, field, default=False)


def _network(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not _NETWORK.match(value):
        raise ConfigurationError(f"network: {value!r} must be letters, digits, '-' or '_'")
    return value


def _webhooks(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise ConfigurationError("webhooks: expected a list of URLs")
    for position, url in enumerate(value):
        parts = urlsplit(url) if isinstance(url, str) else None
        if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigurationError(f"webhooks[{position}]: {url!r} is not an http(s) URL")
    return tuple(value)


def _reject_duplicate_uids(path: Path, monitors: list[Monitor]) -> None:
    seen: dict[str, Monitor] = {}
    for monitor in monitors:
        other = seen.get(monitor.uid)
        if other is not None:
            raise ConfigurationError(
                f"{path}: monitor {monitor.name!r}: uid {monitor.uid!r} is already used by "
                f"monitor {other.name!r}; give one of them another uid"
            )
        seen[monitor.uid] = monitor
