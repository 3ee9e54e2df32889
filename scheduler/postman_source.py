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

One :meth:`PostmanMonitorSource.refresh` is one poll:

1. the monitor listing (``GET /monitors``, 25 a page, when a workspace or a
   marker is set): monitors gone from it are removed at once, monitors it
   lists as inactive are paused at once;
2. details (``GET /monitors/{uid}``, the only call that carries a schedule)
   for at most ``details_per_poll`` monitors: new ones first, then those
   fetched longest ago (only new ones in the first poll after a failed one,
   so the source is back quickly); a 404 removes the monitor;
3. ``GET /collections`` and ``GET /environments``: their ``updatedAt`` say
   which collections and environments of active monitors changed; only those
   are fetched again.

A poll that fails half way keeps what it fetched and what it knew, sets
:attr:`~PostmanMonitorSource.last_error` and leaves the rest for the next
poll. :meth:`~PostmanMonitorSource.collection` and
:meth:`~PostmanMonitorSource.environment` never call the API: they serve the
copies of the last good polls. A monitor that cannot be read (an invalid
cron, no collection) is left out and reported by
:attr:`~PostmanMonitorSource.monitor_errors` and a warning.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pmrunner.errors import (
    ConfigurationError,
    PostmanApiError,
    PostmanAuthError,
    PostmanNotFoundError,
)
from runtime.loading import VariableFile, variable_file_from_json
from scheduler.monitors import Monitor
from scheduler.postman import MONITORS_PAGE_SIZE, PostmanClient
from scheduler.postman_monitor import monitor_from_postman, read_monitors
from scheduler.postman_transport import PERMANENT_ERROR_NAMES
from scheduler.secrets import SecretOverrides
from scheduler.snapshot import Content, Snapshot, collection_key, environment_key

__all__ = ["MonitorSelection", "PostmanMonitorSource", "is_permanent", "monitor_from_postman"]

logger = logging.getLogger("pmrunner.scheduler")

_NOT_POLLED = "the Postman API has not been polled yet"

# Known monitors whose details a poll refreshes even when listing used its allowance.
MIN_KNOWN_DETAILS = 10


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
        details_per_poll: ``GET /monitors/{uid}`` calls a poll may spend on
            monitors it already knows, listing pages included (None: every
            selected monitor, every poll). New monitors are always fetched, and at
            least :data:`MIN_KNOWN_DETAILS` known ones.
        clock: the Unix time, for when details were fetched.
    """

    def __init__(
        self,
        client: PostmanClient,
        selection: MonitorSelection,
        overrides: SecretOverrides | None = None,
        *,
        details_per_poll: int | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._client = client
        self._selection = selection
        self._overrides = overrides or SecretOverrides()
        self._details_per_poll = details_per_poll
        self._clock = clock
        self._lock = threading.Lock()
        self._polled = False
        self._state = Snapshot()
        self._monitor_errors: dict[str, str] = {}
        self._missing: set[str] = set()
        self._last_error: str | None = _NOT_POLLED
        self._permanent = False
        self._pages = 0

    @property
    def healthy(self) -> bool:
        """False before the first poll and while polls fail."""
        return self._last_error is None

    @property
    def last_error(self) -> str | None:
        """Why the last poll failed; None when it succeeded."""
        return self._last_error

    @property
    def permanent(self) -> bool:
        """Whether the last poll failed for a reason no retry cures (a refused key,
        an exhausted monthly budget)."""
        return self._permanent

    @property
    def monitor_errors(self) -> dict[str, str]:
        """Monitor uid → why that monitor was left out at the last good poll."""
        return dict(self._monitor_errors)

    def check_key(self) -> None:
        """One call to Postman: raises PostmanAuthError when the key is refused."""
        self._client.check_key()

    def snapshot(self) -> Snapshot:
        """A copy of what the polls know."""
        with self._lock:
            return Snapshot(
                dict(self._state.monitors), dict(self._state.fetched), dict(self._state.content)
            )

    def restore(self, snapshot: Snapshot) -> None:
        """Start from a stored snapshot, so a new poller refetches only what changed."""
        with self._lock:
            self._state = Snapshot(
                dict(snapshot.monitors), dict(snapshot.fetched), dict(snapshot.content)
            )

    def refresh(self) -> None:
        """Poll the API once (see the module documentation); never raises for API errors."""
        try:
            self._poll()
        except PostmanApiError as exc:
            self._record_failure(exc)
            return
        with self._lock:
            recovered = self._polled and self._last_error is not None
            self._polled, self._last_error, self._permanent = True, None, False
        if recovered:
            logger.info("Postman API polled again without errors; monitors are up to date")

    def monitors(self) -> list[Monitor]:
        """The monitors of the last good poll (polling first if there was none yet)."""
        if not self._polled and self._last_error == _NOT_POLLED:
            self.refresh()
        with self._lock:
            return list(self._state.monitors.values())

    def collection(self, monitor: Monitor) -> dict[str, Any]:
        """The monitor's collection as last fetched.

        Raises:
            PostmanApiError: it was never fetched.
        """
        uid = self._own_reference(monitor, monitor.collection)
        return copy.deepcopy(self._content(collection_key(uid), "collection", uid))

    def environment(self, monitor: Monitor) -> VariableFile | None:
        """The monitor's environment as last fetched, with the overrides applied.

        Raises:
            PostmanApiError: it was never fetched.
            DataFileError: the answer is not an environment.
            ConfigurationError: a vault reference no override supplies.
        """
        if monitor.environment is None:
            return self._overrides.apply(monitor.uid, None)
        uid = self._own_reference(monitor, monitor.environment)
        raw = self._content(environment_key(uid), "environment", uid)
        environment = variable_file_from_json(raw, label=f"Postman environment {uid!r}")
        return self._overrides.apply(monitor.uid, environment)

    # -- polling -----------------------------------------------------------------------

    def _poll(self) -> None:
        listed = self._listed()
        if listed is not None:
            self._apply_listing(listed)
        for uid in self._detail_order(listed):
            self._fetch_details(uid)
        self._refresh_content()

    def _listed(self) -> dict[str, dict[str, Any]] | None:
        """uid → summary of the selected monitors the listing shows; None without a listing."""
        self._pages = 0
        if not self._selection.lists_monitors:
            return None
        listed: dict[str, dict[str, Any]] = {}
        summaries = self._client.list_monitors(workspace=self._selection.workspace)
        self._pages = max(1, -(-len(summaries) // MONITORS_PAGE_SIZE))
        for summary in summaries:
            uid = summary.get("uid") or summary.get("id")
            if isinstance(uid, str) and uid and self._selection.name_matches(summary.get("name")):
                listed[uid] = summary
        return listed

    def _apply_listing(self, listed: dict[str, dict[str, Any]]) -> None:
        """Remove monitors the listing no longer shows; pause those it shows inactive."""
        with self._lock:
            for uid in list(self._state.monitors):
                if uid in self._selection.uids:
                    continue
                if uid not in listed:
                    self._forget(uid)
                elif listed[uid].get("active") is False and self._state.monitors[uid].active:
                    monitor = dataclasses.replace(self._state.monitors[uid], active=False)
                    self._state.monitors[uid] = dataclasses.replace(monitor, version="")

    def _detail_order(self, listed: dict[str, dict[str, Any]] | None) -> list[str]:
        """The uids whose details this poll fetches: new ones first, then the stalest."""
        selected = list(dict.fromkeys([*self._selection.uids, *(listed or {})]))
        with self._lock:
            fetched = dict(self._state.fetched)
        new = [uid for uid in selected if uid not in fetched]
        known = sorted((uid for uid in selected if uid in fetched), key=lambda uid: fetched[uid])
        if self._details_per_poll is None:
            return new + known
        if self._polled and self._last_error is not None:
            return new  # recovering: be back quickly, refresh details next time
        allowance = max(self._details_per_poll - self._pages, MIN_KNOWN_DETAILS)
        return new + known[:allowance]

    def _fetch_details(self, uid: str) -> None:
        try:
            raw = self._client.get_monitor(uid)
        except PostmanNotFoundError:
            # A uid given in the selection is worth one warning.
            if uid in self._selection.uids and uid not in self._missing:
                logger.warning("Postman monitor %r (selected by uid) does not exist", uid)
            self._missing.add(uid)
            with self._lock:
                self._forget(uid)
            return
        self._missing.discard(uid)
        monitors, errors = read_monitors([raw])
        with self._lock:
            self._state.fetched[uid] = self._clock()
            if monitors:
                self._state.monitors[uid] = monitors[0]
                self._monitor_errors.pop(uid, None)
                return
            message = errors.get(uid) or next(iter(errors.values()), "unreadable")
            if self._monitor_errors.get(uid) != message:
                logger.warning("%s; the monitor is left out", message)
            self._monitor_errors[uid] = message
            self._state.monitors.pop(uid, None)

    def _forget(self, uid: str) -> None:
        """Drop a monitor that was deleted or left the selection (call under the lock)."""
        self._state.monitors.pop(uid, None)
        self._state.fetched.pop(uid, None)
        self._monitor_errors.pop(uid, None)

    def _refresh_content(self) -> None:
        """Fetch the collections and environments of active monitors that changed."""
        with self._lock:
            active = [m for m in self._state.monitors.values() if m.active]
        needed_collections = {m.collection for m in active}
        needed_environments = {m.environment for m in active if m.environment}
        client = self._client
        stamps = client.collection_updated_at() if needed_collections else {}
        for uid in sorted(needed_collections):
            self._refresh_one(collection_key(uid), stamps.get(uid), client.get_collection, uid)
        stamps = client.environment_updated_at() if needed_environments else {}
        for uid in sorted(needed_environments):
            self._refresh_one(environment_key(uid), stamps.get(uid), client.get_environment, uid)
        needed = {collection_key(u) for u in needed_collections}
        needed |= {environment_key(u) for u in needed_environments}
        with self._lock:
            for key in set(self._state.content) - needed:
                del self._state.content[key]

    def _refresh_one(
        self, key: str, stamp: str | None, fetch: Callable[[str], dict[str, Any]], uid: str
    ) -> None:
        """Fetch one collection or environment unless the stored copy has this stamp.

        Without a stamp (not listed) the element is fetched each poll.
        """
        with self._lock:
            stored = self._state.content.get(key)
        if stored is not None and stamp is not None and stored.stamp == stamp:
            return
        try:
            body = fetch(uid)
        except PostmanNotFoundError as exc:
            # The monitor points at something gone: its runs say so when they start.
            logger.warning("%s", exc)
            with self._lock:
                self._state.content.pop(key, None)
            return
        with self._lock:
            self._state.content[key] = Content(stamp or "", body)

    def _record_failure(self, error: PostmanApiError) -> None:
        message = str(error)
        permanent = is_permanent(error)
        with self._lock:
            repeated = message == self._last_error
            self._last_error, self._permanent = message, permanent
        if repeated:
            logger.debug("Postman API poll failed again: %s", message)

    # -- helpers -----------------------------------------------------------------------

    def _own_reference(self, monitor: Monitor, reference: str) -> str:
        if monitor.source != "postman":
            raise ConfigurationError(
                f"monitor {monitor.uid!r} comes from {monitor.source}, not from the Postman API"
            )
        return reference

    def _content(self, key: str, kind: str, uid: str) -> dict[str, Any]:
        with self._lock:
            stored = self._state.content.get(key)
        if stored is None:
            raise PostmanApiError(
                f"the {kind} {uid!r} has not been fetched from the Postman API (yet)"
            )
        return stored.body


def is_permanent(error: PostmanApiError) -> bool:
    """Whether no retry cures ``error``: a refused key, or the monthly budget spent."""
    return isinstance(error, PostmanAuthError) or error.error_name in PERMANENT_ERROR_NAMES
