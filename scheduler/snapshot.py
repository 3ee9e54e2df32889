"""What a poll of the monitor source knows: monitors, and the content they run.

A :class:`Snapshot` is the last good state of a source: every selected
monitor (active or paused), when each monitor's details were last fetched,
and the collections and environments the active monitors need, each with
the ``updatedAt`` it was fetched at. The poller keeps it in Redis
(:mod:`scheduler.catalog`) so every scheduler, and a restarted one, starts
from it and runs from it while the source is down.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from scheduler.monitors import Monitor

__all__ = ["Content", "Snapshot", "collection_key", "environment_key", "stored_collection_id"]

# A Postman UID: the owner's numeric id, a dash, then the element's id.
_POSTMAN_UID = re.compile(r"^\d+-(?P<id>.+)$")


def collection_key(uid: str) -> str:
    """The content key of a collection."""
    return f"collection:{uid}"


def environment_key(uid: str) -> str:
    """The content key of an environment."""
    return f"environment:{uid}"


def stored_collection_id(reference: str) -> str:
    """The id a collection's runs are stored under: the bare id of a Postman UID.

    A run stores the collection's ``info._postman_id``; a Postman UID is
    ``<owner>-<that id>``. Anything else (a local file) is kept as it is.
    """
    match = _POSTMAN_UID.match(reference)
    return match["id"] if match else reference


@dataclass(frozen=True)
class Content:
    """A collection or environment as fetched, and the ``updatedAt`` it had then.

    Parameters:
        stamp: the ``updatedAt`` of the listing when it was fetched ("" when unknown).
        body: the collection (v2.x, unwrapped) or environment JSON.
    """

    stamp: str
    body: dict[str, Any]


@dataclass
class Snapshot:
    """A source's last good state.

    Parameters:
        monitors: uid → monitor, active and paused.
        fetched: uid → Unix time its details were last fetched.
        content: content key (:func:`collection_key`, :func:`environment_key`) → content.
    """

    monitors: dict[str, Monitor] = field(default_factory=dict)
    fetched: dict[str, float] = field(default_factory=dict)
    content: dict[str, Content] = field(default_factory=dict)
