"""The data behind the fake Postman API: monitors, collections, environments.

:class:`PostmanStore` holds them in memory, lets tests add, edit and remove
them, and answers the API's GET endpoints from them as ``(status, body)``.
:class:`tests.fakes.fake_postman.FakePostman` serves it over HTTP.
"""

from __future__ import annotations

import base64
import copy
import datetime
import threading
import uuid
from typing import Any

__all__ = ["COLLECTION_SCHEMA", "OWNER_ID", "PAGE_LIMIT_MAX", "PostmanStore", "error_body"]

OWNER_ID = "12345678"
PAGE_LIMIT_MAX = 25
COLLECTION_SCHEMA = "https://schema.getpostman.com/json/collection/v2.1.0/collection.json"

Reply = tuple[int, dict[str, Any]]


class PostmanStore:
    """Monitors, collections and environments, as the Postman API would serve them."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._monitors: dict[str, dict[str, Any]] = {}
        self._monitor_workspaces: dict[str, str] = {}
        self._collections: dict[str, dict[str, Any]] = {}
        self._collection_workspaces: dict[str, str] = {}
        self._environments: dict[str, dict[str, Any]] = {}
        self._last_stamp = datetime.datetime(2000, 1, 1, tzinfo=datetime.UTC)

    # -- monitors -----------------------------------------------------------------

    def add_monitor(
        self,
        name: str = "Monitor",
        *,
        collection_uid: str | None = None,
        environment_uid: str | None = None,
        workspace: str = "ws-default",
        active: bool = True,
        cron: str = "0 * * * *",
        timezone: str = "UTC",
        uid: str | None = None,
        **extra: Any,
    ) -> dict[str, Any]:
        """Add a monitor and return a copy of it as GET /monitors/{uid} serves it.

        ``extra`` fields are merged in at the top level (``options=...``,
        ``retry=...``, ``notificationLimit=...``).
        """
        monitor_id = str(uuid.uuid4())
        uid = uid or f"{OWNER_ID}-{monitor_id}"
        monitor: dict[str, Any] = {
            "id": monitor_id,
            "uid": uid,
            "name": name,
            "owner": OWNER_ID,
            "active": active,
            "collectionUid": collection_uid,
            "environmentUid": environment_uid,
            "schedule": {"cron": cron, "timezone": timezone},
            "options": {
                "strictSSL": True,
                "followRedirects": True,
                "requestTimeout": None,
                "requestDelay": 0,
            },
            "retry": {"attempts": 0},
            "notificationLimit": 0,
            "distribution": [],
        }
        monitor.update(copy.deepcopy(extra))
        with self._lock:
            self._monitors[uid] = monitor
            self._monitor_workspaces[uid] = workspace
            return copy.deepcopy(monitor)

    def edit_monitor(self, uid: str, **fields: Any) -> dict[str, Any]:
        """Replace top-level fields of a monitor; return a copy of the result."""
        with self._lock:
            monitor = self._monitors[uid]
            monitor.update(copy.deepcopy(fields))
            return copy.deepcopy(monitor)

    def deactivate_monitor(self, uid: str) -> None:
        self.edit_monitor(uid, active=False)

    def activate_monitor(self, uid: str) -> None:
        self.edit_monitor(uid, active=True)

    def remove_monitor(self, uid: str) -> None:
        with self._lock:
            del self._monitors[uid]
            del self._monitor_workspaces[uid]

    # -- collections --------------------------------------------------------------

    def add_collection(
        self,
        collection: dict[str, Any] | None = None,
        *,
        name: str = "Collection",
        uid: str | None = None,
        workspace: str = "ws-default",
    ) -> str:
        """Add a v2.1 collection (``{"info", "item"}``; a small one when None); return its uid.

        The stored ``info`` gets ``_postman_id``, ``uid``, ``schema`` and ``updatedAt``.
        """
        collection = copy.deepcopy(collection) if collection else _small_collection(name)
        info = collection.setdefault("info", {})
        collection_id = info.get("_postman_id") or str(uuid.uuid4())
        uid = uid or f"{OWNER_ID}-{collection_id}"
        info.setdefault("name", name)
        info.setdefault("schema", COLLECTION_SCHEMA)
        info.update({"_postman_id": collection_id, "uid": uid})
        collection.setdefault("item", [])
        with self._lock:
            info["updatedAt"] = info["createdAt"] = self._next_stamp()
            self._collections[uid] = collection
            self._collection_workspaces[uid] = workspace
        return uid

    def edit_collection(self, uid: str, collection: dict[str, Any] | None = None) -> str:
        """Replace a collection's content (or just touch it); return the new ``updatedAt``."""
        with self._lock:
            stored = self._collections[uid]
            if collection is not None:
                info = stored["info"]
                stored.clear()
                stored.update(copy.deepcopy(collection))
                stored["info"] = {**copy.deepcopy(collection.get("info", {})), **_ids(info)}
                stored["info"]["createdAt"] = info["createdAt"]
                stored.setdefault("item", [])
            stamp = self._next_stamp()
            stored["info"]["updatedAt"] = stamp
            return stamp

    def remove_collection(self, uid: str) -> None:
        with self._lock:
            del self._collections[uid]
            del self._collection_workspaces[uid]

    # -- environments -------------------------------------------------------------

    def add_environment(
        self,
        name: str = "Environment",
        values: dict[str, str] | list[dict[str, Any]] | None = None,
        *,
        uid: str | None = None,
    ) -> str:
        """Add an environment; ``values`` as ``{key: value}`` or Postman's list. Return its uid."""
        environment_id = str(uuid.uuid4())
        uid = uid or f"{OWNER_ID}-{environment_id}"
        with self._lock:
            self._environments[uid] = {
                "id": environment_id,
                "uid": uid,
                "name": name,
                "owner": OWNER_ID,
                "values": _environment_values(values),
                "isPublic": False,
                "createdAt": self._next_stamp(),
            }
            self._environments[uid]["updatedAt"] = self._environments[uid]["createdAt"]
        return uid

    def edit_environment(
        self, uid: str, values: dict[str, str] | list[dict[str, Any]]
    ) -> dict[str, Any]:
        """Replace an environment's values; return a copy of it."""
        with self._lock:
            environment = self._environments[uid]
            environment["values"] = _environment_values(values)
            environment["updatedAt"] = self._next_stamp()
            return copy.deepcopy(environment)

    def remove_environment(self, uid: str) -> None:
        with self._lock:
            del self._environments[uid]

    # -- answering -------------------------------------------------------------

    def answer_get(self, path: str, query: dict[str, list[str]]) -> Reply:
        """Answer ``GET path?query`` from the stored data."""
        segments = [segment for segment in path.split("/") if segment]
        with self._lock:
            return self._route_get(segments, query)

    def _route_get(self, segments: list[str], query: dict[str, list[str]]) -> Reply:
        match segments:
            case ["monitors"]:
                return self._list_monitors(query)
            case ["monitors", uid]:
                return self._get_one(self._monitors, uid, "monitor", missing_status=404)
            case ["collections"]:
                return self._list_collections(query)
            case ["collections", uid]:
                return self._get_one(self._collections, uid, "collection", missing_status=400)
            case ["environments"]:
                return self._list_environments()
            case ["me"]:
                return _reply(200, {"user": {"id": int(OWNER_ID), "username": "fake"}})
            case ["environments", uid]:
                return self._get_one(self._environments, uid, "environment", missing_status=400)
        return _reply(404, error_body("notFound", "Requested resource not found"))

    def _get_one(
        self, store: dict[str, dict[str, Any]], uid: str, kind: str, *, missing_status: int
    ) -> Reply:
        found = _lookup(store, uid)
        if found is None:
            name = "instanceNotFoundError" if missing_status == 400 else "notFound"
            return _reply(
                missing_status,
                error_body(name, f"We could not find the {kind} you are looking for"),
            )
        return _reply(200, {kind: found})

    def _list_monitors(self, query: dict[str, list[str]]) -> Reply:
        limit_text = _first(query, "limit") or str(PAGE_LIMIT_MAX)
        if not limit_text.isdigit() or int(limit_text) < 1:
            return _reply(400, error_body("invalidParamError", "limit must be a positive integer"))
        limit = min(int(limit_text), PAGE_LIMIT_MAX)
        offset = _decode_cursor(_first(query, "cursor"))
        if offset is None:
            return _reply(400, error_body("invalidParamError", "The cursor is not valid"))
        workspace, active = _first(query, "workspace"), _first(query, "active")
        summaries = [
            _monitor_summary(monitor)
            for uid, monitor in self._monitors.items()
            if (workspace is None or self._monitor_workspaces[uid] == workspace)
            and (active is None or str(monitor["active"]).lower() == active.lower())
        ]
        page = summaries[offset : offset + limit]
        more = offset + limit < len(summaries)
        next_cursor = _encode_cursor(offset + limit) if more else None
        return _reply(200, {"monitors": page, "meta": {"limit": limit, "nextCursor": next_cursor}})

    def _list_collections(self, query: dict[str, list[str]]) -> Reply:
        workspace = _first(query, "workspace")
        summaries = [
            {
                "id": collection["info"]["_postman_id"],
                "uid": uid,
                "name": collection["info"]["name"],
                "owner": OWNER_ID,
                "createdAt": collection["info"]["createdAt"],
                "updatedAt": collection["info"]["updatedAt"],
                "isPublic": False,
            }
            for uid, collection in self._collections.items()
            if workspace is None or self._collection_workspaces[uid] == workspace
        ]
        return _reply(200, {"collections": summaries})

    def _list_environments(self) -> Reply:
        keys = ("id", "uid", "name", "owner", "createdAt", "updatedAt", "isPublic")
        summaries = [{key: env.get(key) for key in keys} for env in self._environments.values()]
        return _reply(200, {"environments": summaries})

    def _next_stamp(self) -> str:
        """A new ``updatedAt``, strictly later than the previous one (call under the lock)."""
        now = datetime.datetime.now(datetime.UTC)
        now = now.replace(microsecond=now.microsecond // 1000 * 1000)  # milliseconds, as Postman
        stamp = max(now, self._last_stamp + datetime.timedelta(milliseconds=1))
        self._last_stamp = stamp
        return stamp.strftime("%Y-%m-%dT%H:%M:%S.") + f"{stamp.microsecond // 1000:03d}Z"


def _reply(status: int, body: dict[str, Any]) -> Reply:
    return status, body


def error_body(name: str, message: str) -> dict[str, Any]:
    """Postman's usual error body."""
    return {"error": {"name": name, "message": message}}


def _first(query: dict[str, list[str]], name: str) -> str | None:
    values = query.get(name)
    return values[0] if values else None


def _lookup(store: dict[str, dict[str, Any]], uid: str) -> dict[str, Any] | None:
    """Find by uid, or by bare id as Postman also accepts; a copy."""
    found = store.get(uid)
    if found is None:
        found = next((item for key, item in store.items() if key.endswith(f"-{uid}")), None)
    return copy.deepcopy(found) if found is not None else None


def _monitor_summary(monitor: dict[str, Any]) -> dict[str, Any]:
    keys = ("id", "uid", "name", "owner", "active", "collectionUid", "environmentUid")
    return {key: copy.deepcopy(monitor.get(key)) for key in keys}


def _encode_cursor(offset: int) -> str:
    return base64.urlsafe_b64encode(f"offset:{offset}".encode()).decode()


def _decode_cursor(cursor: str | None) -> int | None:
    """The offset a cursor stands for; 0 for no cursor; None for a bad one."""
    if cursor is None:
        return 0
    try:
        text = base64.urlsafe_b64decode(cursor.encode()).decode()
    except (ValueError, UnicodeDecodeError):
        return None
    prefix, _, number = text.partition(":")
    return int(number) if prefix == "offset" and number.isdigit() else None


def _ids(info: dict[str, Any]) -> dict[str, Any]:
    return {key: info[key] for key in ("_postman_id", "uid", "schema") if key in info}


def _environment_values(values: dict[str, str] | list[dict[str, Any]] | None) -> list[Any]:
    if values is None:
        return []
    if isinstance(values, dict):
        return [
            {"key": key, "value": value, "enabled": True, "type": "default"}
            for key, value in values.items()
        ]
    return copy.deepcopy(values)


def _small_collection(name: str) -> dict[str, Any]:
    return {
        "info": {"name": name, "schema": COLLECTION_SCHEMA},
        "item": [
            {
                "name": "Health",
                "request": {"method": "GET", "url": "http://127.0.0.1:9/health"},
            }
        ],
    }
