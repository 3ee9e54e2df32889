"""A client for the parts of the Postman public API that a monitor runner needs.

The scheduler polls monitors with it and fetches their collections and
environments; ``pmrunner run`` fetches collections by uid with it::

    with PostmanClient(api_key) as postman:
        for summary in postman.list_monitors(active=True):
            monitor = postman.get_monitor(summary["uid"])

Collections are cached by their ``updatedAt``. One call to ``GET /collections``
tells when every collection last changed; a cached copy whose ``info.updatedAt``
still matches is used without fetching it again::

    cache: dict[str, dict[str, Any]] = {}
    stamps = postman.collection_updated_at()          # once per poll
    collection = postman.get_collection_cached(uid, cache, updated_at=stamps.get(uid))

Throttling, retries and error handling live in
:mod:`scheduler.postman_transport`; the API key never appears in a log line,
an exception message or a repr.
"""

from __future__ import annotations

import time
from collections.abc import Callable, MutableMapping
from types import TracebackType
from typing import Any
from urllib.parse import quote

import requests

from pmrunner.errors import ConfigurationError, InputError, PostmanResponseError
from scheduler.budget import Budget, LocalBudget
from scheduler.postman_transport import REDACTED, PostmanTransport

__all__ = ["DEFAULT_BASE_URL", "MONITORS_PAGE_SIZE", "PostmanClient"]

DEFAULT_BASE_URL = "https://api.getpostman.com"

# The largest page GET /monitors serves.
MONITORS_PAGE_SIZE = 25

# A bound on pagination, so a server that keeps handing out cursors cannot
# keep us looping: 10,000 pages of 25 is far beyond any real workspace.
_MAX_PAGES = 10_000


class PostmanClient:
    """Reads monitors, collections and environments from the Postman API.

    Thread-safe as long as the ``session`` is (a requests session is, for GETs).

    Args:
        api_key: the Postman API key (``PMAK-...``), sent as ``X-Api-Key``.
        base_url: the API root.
        proxy: a proxy URL for both http and https; None leaves requests'
            environment proxy handling (``HTTPS_PROXY``, ``NO_PROXY``) in charge.
        timeout: seconds to connect and seconds between bytes read, per attempt.
        max_retries: retries after the first attempt, for 429, 5xx, connection
            errors and timeouts.
        requests_per_minute: client-side limit over all calls (Postman allows 300),
            when no ``budget`` is given.
        monitor_calls_per_10s: client-side limit over calls to ``/monitors``, when
            no ``budget`` is given.
        budget: the rate budget to draw from, such as the cluster's
            :class:`~scheduler.budget.RedisBudget`; a :class:`~scheduler.budget.LocalBudget`
            with the two limits above when None.
        session: a requests session to share; one is made (and closed by
            :meth:`close`) when None.
        sleep: how to wait; tests pass a recorder.
        clock: a monotonic clock, for the client-side limits.
        wall_clock: the Unix time, for ``Retry-After`` dates and reset timestamps.
        backoff_base: the first backoff wait in seconds, doubled per retry.
        backoff_cap: the longest backoff wait in seconds.
        max_retry_after: the longest ``Retry-After`` to sit through; a longer one
            raises :class:`~pmrunner.errors.PostmanRateLimitError` at once.

    Raises:
        ConfigurationError: for an empty key, a base URL that is not http(s),
            or limits that are not positive.
    """

    def __init__(
        self,
        api_key: str,
        *,
        base_url: str = DEFAULT_BASE_URL,
        proxy: str | None = None,
        timeout: float = 30.0,
        max_retries: int = 4,
        requests_per_minute: int = 300,
        monitor_calls_per_10s: int = 10,
        budget: Budget | None = None,
        session: requests.Session | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        backoff_base: float = 0.5,
        backoff_cap: float = 30.0,
        max_retry_after: float = 120.0,
    ) -> None:
        if budget is None:
            try:
                budget = LocalBudget(
                    requests_per_minute, monitor_calls_per_10s, clock=clock, sleep=sleep
                )
            except ValueError as exc:
                raise ConfigurationError(f"Postman client: {exc}") from None
        self._transport = PostmanTransport(
            api_key,
            base_url=base_url,
            proxy=proxy,
            timeout=timeout,
            max_retries=max_retries,
            budget=budget,
            session=session,
            sleep=sleep,
            wall_clock=wall_clock,
            backoff_base=backoff_base,
            backoff_cap=backoff_cap,
            max_retry_after=max_retry_after,
        )

    @property
    def base_url(self) -> str:
        """The API root, without a trailing slash."""
        return self._transport.base_url

    def close(self) -> None:
        """Close the HTTP session if this client made it."""
        self._transport.close()

    def __enter__(self) -> PostmanClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"PostmanClient(base_url={self.base_url!r}, api_key={REDACTED!r})"

    def redact(self, text: str) -> str:
        """Return ``text`` with this client's API key replaced by a marker."""
        return self._transport.redact(text)

    # -- monitors --------------------------------------------------------------

    def list_monitors(
        self, *, workspace: str | None = None, active: bool | None = None
    ) -> list[dict[str, Any]]:
        """List monitors, following ``meta.nextCursor`` through every page.

        Args:
            workspace: only monitors of this workspace id.
            active: only active (True) or only paused (False) monitors. The
                filter is also applied here, for monitors that report ``active``.

        Returns:
            The monitor summaries in the order the API gives them.

        Raises:
            PostmanResponseError: an answer without a ``monitors`` list, or a
                cursor that repeats.
        """
        params: dict[str, str] = {"limit": str(MONITORS_PAGE_SIZE)}
        if workspace is not None:
            params["workspace"] = workspace
        if active is not None:
            params["active"] = "true" if active else "false"
        monitors: list[dict[str, Any]] = []
        seen_cursors: set[str] = set()
        for _ in range(_MAX_PAGES):
            body = self._transport.get_json("/monitors", params)
            monitors.extend(_monitor_page(body, params))
            cursor = _next_cursor(body)
            if cursor is None:
                return _filter_active(monitors, active)
            if cursor in seen_cursors:
                raise PostmanResponseError(
                    f"Postman API GET /monitors handed out cursor {cursor!r} twice; stopped paging",
                    endpoint="GET /monitors",
                )
            seen_cursors.add(cursor)
            params = {**params, "cursor": cursor}
        raise PostmanResponseError(
            f"Postman API GET /monitors: more than {_MAX_PAGES} pages; stopped paging",
            endpoint="GET /monitors",
        )

    def get_monitor(self, uid: str) -> dict[str, Any]:
        """Fetch one monitor: schedule, options, retry, collection and environment uids.

        Args:
            uid: the monitor uid (``ownerId-monitorId``) or id.

        Raises:
            PostmanNotFoundError: the API answered 404.
        """
        path = f"/monitors/{_path_segment('monitor', uid)}"
        body = self._transport.get_json(path, resource=f"monitor {uid!r}")
        return _unwrap(body, "monitor", path)

    # -- collections and environments -------------------------------------------

    def get_collection(self, uid: str) -> dict[str, Any]:
        """Fetch a collection as v2.1 JSON: the inner ``{"info": ..., "item": ...}``.

        Args:
            uid: the collection uid or id.

        Raises:
            PostmanNotFoundError: the API has no collection with that uid.
            PostmanResponseError: the answer holds no collection with an ``info``.
        """
        path = f"/collections/{_path_segment('collection', uid)}"
        body = self._transport.get_json(path, resource=f"collection {uid!r}")
        collection = _unwrap(body, "collection", path)
        if not isinstance(collection.get("info"), dict):
            raise PostmanResponseError(
                f"Postman API GET {path} answered a collection without an 'info' object",
                endpoint=f"GET {path}",
            )
        return collection

    def get_environment(self, uid: str) -> dict[str, Any]:
        """Fetch an environment: ``{"id", "name", "values": [{key, value, enabled, type}]}``.

        Args:
            uid: the environment uid or id.

        Raises:
            PostmanNotFoundError: the API has no environment with that uid.
        """
        path = f"/environments/{_path_segment('environment', uid)}"
        body = self._transport.get_json(path, resource=f"environment {uid!r}")
        return _unwrap(body, "environment", path)

    def list_collections(self, *, workspace: str | None = None) -> list[dict[str, Any]]:
        """List collection summaries (``uid``, ``name``, ``updatedAt``, ...).

        Args:
            workspace: only collections of this workspace id.
        """
        return self._list("collections", workspace)

    def collection_updated_at(self, *, workspace: str | None = None) -> dict[str, str]:
        """Map each collection uid to its ``updatedAt``, in one call.

        Args:
            workspace: only collections of this workspace id.
        """
        return _stamps(self.list_collections(workspace=workspace))

    def environment_updated_at(self, *, workspace: str | None = None) -> dict[str, str]:
        """Map each environment uid to its ``updatedAt``, in one call.

        Args:
            workspace: only environments of this workspace id.
        """
        return _stamps(self._list("environments", workspace))

    def check_key(self) -> None:
        """Call ``GET /me`` once: raises PostmanAuthError when the key is refused."""
        self._transport.get_json("/me")

    def _list(self, kind: str, workspace: str | None) -> list[dict[str, Any]]:
        """``GET /<kind>``: the summaries in its ``<kind>`` list."""
        params = {"workspace": workspace} if workspace is not None else None
        body = self._transport.get_json(f"/{kind}", params)
        entries = body.get(kind)
        if not isinstance(entries, list):
            raise PostmanResponseError(
                f"Postman API GET /{kind} answered without a '{kind}' list",
                endpoint=f"GET /{kind}",
            )
        return [entry for entry in entries if isinstance(entry, dict)]

    def get_collection_cached(
        self,
        uid: str,
        cache: MutableMapping[str, dict[str, Any]],
        *,
        updated_at: str | None = None,
    ) -> dict[str, Any]:
        """Return a collection from ``cache`` while it is current, else fetch it.

        Args:
            uid: the collection uid.
            cache: uid → collection, owned by the caller (one per scheduler);
                a fetched collection is stored in it.
            updated_at: the collection's current ``updatedAt`` (from
                :meth:`collection_updated_at`). The cached copy is used when its
                ``info.updatedAt`` equals it; when None the collection is fetched.

        Returns:
            The collection, as :meth:`get_collection` returns it. Callers must
            not modify it: it is the cached object.
        """
        cached = cache.get(uid)
        if cached is not None and updated_at is not None:
            info = cached.get("info")
            if isinstance(info, dict) and info.get("updatedAt") == updated_at:
                return cached
        collection = self.get_collection(uid)
        cache[uid] = collection
        return collection


def _stamps(entries: list[dict[str, Any]]) -> dict[str, str]:
    """uid → ``updatedAt`` of listed summaries."""
    stamps: dict[str, str] = {}
    for entry in entries:
        uid, updated_at = entry.get("uid"), entry.get("updatedAt")
        if isinstance(uid, str) and isinstance(updated_at, str):
            stamps[uid] = updated_at
    return stamps


def _path_segment(kind: str, uid: str) -> str:
    """Check a uid and quote it for use as one path segment."""
    if not isinstance(uid, str) or not uid.strip():
        raise InputError(f"{kind} uid must be a non-empty string, got {uid!r}")
    return quote(uid.strip(), safe="")


def _unwrap(body: dict[str, Any], key: str, path: str) -> dict[str, Any]:
    """Return ``body[key]``, which must be an object."""
    inner = body.get(key)
    if not isinstance(inner, dict):
        raise PostmanResponseError(
            f"Postman API GET {path} answered without a '{key}' object",
            endpoint=f"GET {path}",
        )
    return inner


def _monitor_page(body: dict[str, Any], params: dict[str, str]) -> list[dict[str, Any]]:
    """The monitors of one page of GET /monitors."""
    monitors = body.get("monitors")
    if not isinstance(monitors, list):
        query = "&".join(f"{key}={value}" for key, value in params.items())
        raise PostmanResponseError(
            f"Postman API GET /monitors?{query} answered without a 'monitors' list",
            endpoint="GET /monitors",
        )
    return [monitor for monitor in monitors if isinstance(monitor, dict)]


def _next_cursor(body: dict[str, Any]) -> str | None:
    """The cursor of the next page, or None on the last page."""
    meta = body.get("meta")
    if not isinstance(meta, dict):
        return None
    cursor = meta.get("nextCursor")
    return cursor if isinstance(cursor, str) and cursor else None


def _filter_active(monitors: list[dict[str, Any]], active: bool | None) -> list[dict[str, Any]]:
    """Keep monitors whose ``active`` matches; those that do not say are kept."""
    if active is None:
        return monitors
    return [monitor for monitor in monitors if monitor.get("active", active) is active]
