"""Monitors: what to run, when, and with which options; and where they come from.

A :class:`Monitor` is the scheduler's view of one monitor, whichever source
defined it (the Postman API or a local ``monitors.yaml``). It is immutable and
converts to and from plain JSON (:meth:`Monitor.to_dict`,
:meth:`Monitor.from_dict`), because monitors travel in Celery messages.

Fields of a monitor:

- ``uid``: a stable identifier (Postman's monitor uid, or the local ``uid``).
- ``name``: shown in reports.
- ``schedule``: a :class:`~scheduler.schedule.Schedule` (cron + time zone, or
  an interval).
- ``source``: ``"postman"`` or ``"local"``.
- ``collection``: a Postman collection uid, or the path of a collection file.
- ``environment``: a Postman environment uid, the path of an environment
  file, or None.
- ``options``: :class:`MonitorOptions` (TLS verification, redirects, request
  timeout and delay in milliseconds; 0 means none).
- ``retry_attempts``: how many times a failed run is retried (default 0).
- ``notification_limit``: how many failing runs in a row are notified
  (default 1; 0 sends no notices).
- ``network``: a network every request of the monitor is pinned to, or None
  to route each request by its host.
- ``webhooks``: URLs the run report is posted to.
- ``active``: paused monitors (False) are known but not scheduled.
- ``version``: a digest of all the other fields, computed when left empty,
  so that an edited monitor can be noticed.
- ``resend_unsafe``: whether a sent POST, PUT, PATCH or DELETE whose worker
  was lost is sent again (None: the runner's ``PMRUNNER_RESEND_UNSAFE``).

A :class:`MonitorSource` supplies monitors and the collections and
environments they run.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from pmrunner.errors import ConfigurationError
from runtime.loading import VariableFile
from scheduler.schedule import Schedule

__all__ = ["SOURCES", "Monitor", "MonitorOptions", "MonitorSource"]

SOURCES = ("postman", "local")


@dataclass(frozen=True)
class MonitorOptions:
    """How a monitor's requests are sent.

    Args:
        strict_ssl: verify TLS certificates (Postman's ``strictSSL``).
        follow_redirects: follow HTTP redirects (``followRedirects``).
        request_timeout_ms: time limit of one request in milliseconds; 0 for none
            (``requestTimeout``).
        request_delay_ms: pause between requests in milliseconds (``requestDelay``).
    """

    strict_ssl: bool = True
    follow_redirects: bool = True
    request_timeout_ms: int = 0
    request_delay_ms: int = 0

    def __post_init__(self) -> None:
        for name in ("strict_ssl", "follow_redirects"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigurationError(f"options.{name} must be true or false")
        for name in ("request_timeout_ms", "request_delay_ms"):
            _require_count(f"options.{name}", getattr(self, name))

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form, with the field names of this class."""
        return {
            "strict_ssl": self.strict_ssl,
            "follow_redirects": self.follow_redirects,
            "request_timeout_ms": self.request_timeout_ms,
            "request_delay_ms": self.request_delay_ms,
        }

    @classmethod
    def from_dict(cls, data: Any) -> MonitorOptions:
        """The inverse of :meth:`to_dict`; missing fields take their defaults."""
        if not isinstance(data, dict):
            raise ConfigurationError(f"options must be an object, got {data!r}")
        return cls(**_known_fields(data, cls.__dataclass_fields__, "options"))


@dataclass(frozen=True)
class Monitor:
    """One monitor: its identity, schedule, collection, environment and options.

    See the module documentation for the meaning of each field.

    Raises:
        ConfigurationError: an unknown ``source``, empty ``uid``/``name``/
            ``collection``, or negative counts.
    """

    uid: str
    name: str
    schedule: Schedule
    source: str
    collection: str
    environment: str | None
    options: MonitorOptions = field(default_factory=MonitorOptions)
    retry_attempts: int = 0
    notification_limit: int = 1
    network: str | None = None
    webhooks: tuple[str, ...] = ()
    active: bool = True
    version: str = ""
    resend_unsafe: bool | None = None

    def __post_init__(self) -> None:
        for name in ("uid", "name", "collection"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value:
                raise ConfigurationError(f"monitor {name} must be non-empty text, got {value!r}")
        if self.source not in SOURCES:
            raise ConfigurationError(
                f"monitor {self.uid!r}: source must be one of {', '.join(SOURCES)}, "
                f"got {self.source!r}"
            )
        _require_count(f"monitor {self.uid!r}: retry_attempts", self.retry_attempts)
        _require_count(f"monitor {self.uid!r}: notification_limit", self.notification_limit)
        object.__setattr__(self, "webhooks", tuple(self.webhooks))
        if not self.version:
            object.__setattr__(self, "version", self.definition_digest())

    def definition_digest(self) -> str:
        """A short digest of every field but ``version``; it changes when the monitor is edited."""
        definition = self.to_dict()
        del definition["version"]
        canonical = json.dumps(definition, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form, for Celery messages and the store."""
        return {
            "uid": self.uid,
            "name": self.name,
            "schedule": self.schedule.to_dict(),
            "source": self.source,
            "collection": self.collection,
            "environment": self.environment,
            "options": self.options.to_dict(),
            "retry_attempts": self.retry_attempts,
            "notification_limit": self.notification_limit,
            "network": self.network,
            "webhooks": list(self.webhooks),
            "active": self.active,
            "version": self.version,
            # Only when set: monitors that do not choose keep the digest they had.
            **({} if self.resend_unsafe is None else {"resend_unsafe": self.resend_unsafe}),
        }

    @classmethod
    def from_dict(cls, data: Any) -> Monitor:
        """The inverse of :meth:`to_dict`.

        Raises:
            ConfigurationError: not an object, a missing required field or a
                field of the wrong kind.
        """
        if not isinstance(data, dict):
            raise ConfigurationError(f"monitor must be an object, got {data!r}")
        fields = _known_fields(data, cls.__dataclass_fields__, "monitor")
        for required in ("uid", "name", "schedule", "source", "collection"):
            if required not in fields:
                raise ConfigurationError(f"monitor: missing field {required!r}")
        fields.setdefault("environment", None)
        fields["schedule"] = Schedule.from_dict(fields["schedule"])
        fields["options"] = MonitorOptions.from_dict(fields.get("options", {}))
        fields["webhooks"] = tuple(fields.get("webhooks") or ())
        return cls(**fields)


@runtime_checkable
class MonitorSource(Protocol):
    """Where monitors, and the collections and environments they run, come from.

    Implementations never raise from :meth:`refresh` or :meth:`monitors`:
    a source that cannot be read keeps its last known monitors and reports the
    problem through :attr:`healthy` and :attr:`last_error`.
    """

    @property
    def healthy(self) -> bool:
        """False while the last attempt to read the monitors failed."""
        ...

    @property
    def last_error(self) -> str | None:
        """Why the last attempt failed; None when it succeeded."""
        ...

    def refresh(self) -> None:
        """Look for added, edited and removed monitors now."""
        ...

    def monitors(self) -> list[Monitor]:
        """The monitors currently known, active and paused."""
        ...

    def collection(self, monitor: Monitor) -> dict[str, Any]:
        """The monitor's collection as v2.x JSON (``{"info", "item", ...}``, unwrapped)."""
        ...

    def environment(self, monitor: Monitor) -> VariableFile | None:
        """The monitor's environment with local overrides applied; None when it has none."""
        ...


def _require_count(label: str, value: Any) -> None:
    """A whole number of zero or more (booleans are not numbers here)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigurationError(f"{label} must be a whole number of 0 or more, got {value!r}")


def _known_fields(data: dict[str, Any], known: dict[str, Any], label: str) -> dict[str, Any]:
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise ConfigurationError(f"{label}: unknown field(s) {', '.join(map(repr, unknown))}")
    return dict(data)
