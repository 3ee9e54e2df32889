"""The monitor catalog in Redis: the last good poll, and when each monitor runs next.

The poller writes, the tick and the API read. Keys, under the key prefix:

- ``catalog:monitors``: hash, uid → ``{"monitor", "fetched"}`` (JSON; webhook
  URLs, which often carry a token, sealed);
- ``catalog:content``: hash, content key → ``{"stamp", "body"}`` (collections
  and environments), with ``catalog:stamps`` (content key → stamp) beside it
  so a reader revalidates its copy without reading the body;
- ``catalog:version``: bumped whenever anything above changes;
- ``schedule:next``: sorted set, uid → the Unix time of its next slot, for
  active monitors only: a tick reads only what is due;
- ``source:state``: hash, how the polls are going (see :mod:`scheduler.health`).

Catalog keys expire ``max_staleness`` seconds after the last good poll, so
environments (which may hold credentials) do not outlive their use.
Collections and environments are sealed in ``catalog:content`` like a run's
data (:mod:`store.sealing`), under the cluster's secret key.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import redis

from pmrunner.errors import ConfigurationError
from scheduler.monitors import Monitor
from scheduler.snapshot import Content, Snapshot
from store.sealing import Sealer

__all__ = ["Catalog", "Changes", "Due"]
log = logging.getLogger(__name__)
OPENED_WEBHOOKS_KEPT = 100_000


@dataclass(frozen=True)
class Changes:
    """What a commit changed: monitor uids added, edited, paused and removed."""

    added: tuple[str, ...] = ()
    edited: tuple[str, ...] = ()
    paused: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    content: int = 0

    def __bool__(self) -> bool:
        return bool(self.added or self.edited or self.paused or self.removed or self.content)


@dataclass(frozen=True)
class Due:
    """A tick's view of the schedule.

    Parameters:
        version: the catalog version (reload the monitors when it moved).
        due: ``(uid, slot)`` of monitors whose stored next slot has come, slot in Unix seconds.
        next_at: the earliest slot still to come, None when nothing is scheduled.
    """

    version: int
    due: list[tuple[str, int]]
    next_at: float | None


class Catalog:
    """The monitor catalog of one deployment (one key prefix).

    Args:
        client: the Redis client.
        prefix: the key prefix (``Settings.key_prefix``).
        max_staleness: seconds the catalog outlives the last good poll.
        sealer: seals collections, environments and webhook URLs at rest
            (``store.sealing``).
    """

    def __init__(
        self,
        client: redis.Redis,
        prefix: str,
        max_staleness: float,
        sealer: Sealer | None = None,
    ) -> None:
        self.redis = client
        self.sealer = sealer or Sealer()
        self.prefix = prefix
        self.max_staleness = max_staleness
        self.monitors_key = f"{prefix}catalog:monitors"
        self.content_key = f"{prefix}catalog:content"
        self.stamps_key = f"{prefix}catalog:stamps"
        self.version_key = f"{prefix}catalog:version"
        self.next_key = f"{prefix}schedule:next"
        self._cache_lock = threading.Lock()
        self._monitors: tuple[int, dict[str, Monitor]] = (-1, {})
        self._stamps: tuple[int, dict[str, str]] = (-1, {})
        self._content: dict[str, Content] = {}
        self._webhooks: dict[str, tuple[str, bool]] = {}

    # -- the poller's side ---------------------------------------------------------------

    def load(self) -> Snapshot:
        """Everything stored, as a snapshot (a new poller starts from it)."""
        return self._load()[0]

    def _load(self) -> tuple[Snapshot, set[str]]:
        """Everything stored, and the monitor uids and content keys to seal again.

        Those are stored in clear (written before sealing was on) or under a
        previous key; entries no key of this process opens are left out, so
        the next commit writes them afresh.
        """
        pipe = self.redis.pipeline(transaction=False)
        pipe.hgetall(self.monitors_key)
        pipe.hgetall(self.content_key)
        raw_monitors, raw_content = pipe.execute()
        snapshot, stale = Snapshot(), set()
        for uid, raw in raw_monitors.items():
            entry = json.loads(raw)
            try:
                monitor, current = self._monitor_checked(entry)
            except ConfigurationError as error:
                log.warning("catalog: monitor %s is fetched again: %s", _text(uid), error)
                continue
            snapshot.monitors[_text(uid)] = monitor
            snapshot.fetched[_text(uid)] = float(entry.get("fetched") or 0)
            if not current:
                stale.add(_text(uid))
        for key, raw in raw_content.items():
            try:
                text, current = self.sealer.open_checked(raw)
            except ConfigurationError as error:
                log.warning("catalog: %s is fetched again: %s", _text(key), error)
                continue
            entry = json.loads(text)
            snapshot.content[_text(key)] = Content(entry["stamp"], entry["body"])
            if not current:
                stale.add(_text(key))
        return snapshot, stale

    def commit(self, snapshot: Snapshot, now: datetime) -> Changes:
        """Store a good poll's snapshot; (re)schedule monitors whose schedule is new.

        Monitors that are new, were paused, or whose schedule changed get their
        next slot after ``now``; the others keep theirs. Paused and removed
        monitors leave the schedule in the same transaction, so no tick can
        claim one of their slots afterwards.
        """
        stored, stale = self._load()
        pipe = self.redis.pipeline(transaction=True)
        changes = self._write_monitors(pipe, stored, snapshot, now, stale)
        content = self._write_content(pipe, stored, snapshot, stale)
        changes = Changes(changes.added, changes.edited, changes.paused, changes.removed, content)
        if changes:
            pipe.incr(self.version_key)
        for key in (self.monitors_key, self.content_key, self.stamps_key, self.next_key):
            pipe.expire(key, max(1, round(self.max_staleness)))
        pipe.execute()
        return changes

    def _write_monitors(
        self, pipe: Any, stored: Snapshot, snapshot: Snapshot, now: datetime, stale: set[str]
    ) -> Changes:
        added: list[str] = []
        edited: list[str] = []
        paused: list[str] = []
        removed = [uid for uid in stored.monitors if uid not in snapshot.monitors]
        if removed:
            pipe.hdel(self.monitors_key, *removed)
            pipe.zrem(self.next_key, *removed)
        for uid, monitor in snapshot.monitors.items():
            before = stored.monitors.get(uid)
            fetched = snapshot.fetched.get(uid, 0.0)
            if before != monitor or stored.fetched.get(uid) != fetched or uid in stale:
                pipe.hset(self.monitors_key, uid, json.dumps(self._entry(monitor, fetched)))
            if not monitor.active:
                pipe.zrem(self.next_key, uid)
                if before is not None and before.active:
                    paused.append(uid)
                continue
            if before is None or not before.active or before.schedule != monitor.schedule:
                pipe.zadd(self.next_key, {uid: _next_slot(monitor, now)})
                (added if before is None else edited).append(uid)
            else:
                pipe.zadd(self.next_key, {uid: _next_slot(monitor, now)}, nx=True)
                if before != monitor:
                    edited.append(uid)
        return Changes(tuple(added), tuple(edited), tuple(paused), tuple(removed))

    def _write_content(
        self, pipe: Any, stored: Snapshot, snapshot: Snapshot, stale: set[str]
    ) -> int:
        gone = [key for key in stored.content if key not in snapshot.content]
        if gone:
            pipe.hdel(self.content_key, *gone)
            pipe.hdel(self.stamps_key, *gone)
        changed = 0
        for key, content in snapshot.content.items():
            if stored.content.get(key) == content and key not in stale:
                continue
            changed += 1
            body = self.sealer.seal_json({"stamp": content.stamp, "body": content.body})
            pipe.hset(self.content_key, key, body)
            pipe.hset(self.stamps_key, key, _revision(content))
        return changed + len(gone)

    def _entry(self, monitor: Monitor, fetched: float) -> dict[str, Any]:
        """A monitor as stored: its webhook URLs sealed."""
        definition = monitor.to_dict()
        definition["webhooks"] = [self.sealer.seal(url) for url in monitor.webhooks]
        return {"monitor": definition, "fetched": fetched}

    def _monitor(self, entry: dict[str, Any]) -> Monitor:
        """The inverse of :meth:`_entry`."""
        return self._monitor_checked(entry)[0]

    def _monitor_checked(self, entry: dict[str, Any]) -> tuple[Monitor, bool]:
        """The monitor of an entry, and whether its webhooks are sealed as they would be now."""
        definition = dict(entry["monitor"])
        opened = [self._open_webhook(url) for url in definition.get("webhooks") or ()]
        definition["webhooks"] = [url for url, _ in opened]
        return Monitor.from_dict(definition), all(current for _, current in opened)

    def _open_webhook(self, sealed: str) -> tuple[str, bool]:
        """A stored webhook URL opened, remembered by its sealed form: each poll and each
        reload of the monitors reads every one, and opening costs ~25 µs."""
        found = self._webhooks.get(sealed)
        if found is None:
            found = self.sealer.open_checked(sealed)
            if len(self._webhooks) >= OPENED_WEBHOOKS_KEPT:
                self._webhooks.clear()
            self._webhooks[sealed] = found
        return found

    # -- the tick's side -------------------------------------------------------------------

    def due(self, now: float) -> Due:
        """The monitors due at ``now`` and when the next one comes, in one round trip."""
        pipe = self.redis.pipeline(transaction=False)
        pipe.get(self.version_key)
        pipe.zrangebyscore(self.next_key, "-inf", now, withscores=True)
        pipe.zrangebyscore(self.next_key, f"({now}", "+inf", start=0, num=1, withscores=True)
        version, due, upcoming = pipe.execute()
        return Due(
            int(version or 0),
            [(_text(uid), int(score)) for uid, score in due],
            float(upcoming[0][1]) if upcoming else None,
        )

    def version(self) -> int:
        """The catalog's version now (it moves with every change a poll commits)."""
        return int(self.redis.get(self.version_key) or 0)

    def stamps(self, version: int) -> dict[str, str]:
        """Content key → its revision, reloaded only when ``version`` moved."""
        with self._cache_lock:
            cached_version, cached = self._stamps
        if version == cached_version:
            return cached
        pipe = self.redis.pipeline(transaction=False)
        pipe.get(self.version_key)
        pipe.hgetall(self.stamps_key)
        raw_version, raw = pipe.execute()
        stamps = {_text(key): _text(value) for key, value in raw.items()}
        with self._cache_lock:
            self._stamps = (int(raw_version or 0), stamps)
        return stamps

    def monitors(self, version: int | None = None) -> dict[str, Monitor]:
        """uid → monitor, reloaded from Redis only when ``version`` moved (or is None)."""
        with self._cache_lock:
            cached_version, cached = self._monitors
        if version is not None and version == cached_version:
            return cached
        pipe = self.redis.pipeline(transaction=False)
        pipe.get(self.version_key)
        pipe.hgetall(self.monitors_key)
        raw_version, raw = pipe.execute()
        monitors = {_text(uid): self._monitor(json.loads(item)) for uid, item in raw.items()}
        with self._cache_lock:
            self._monitors = (int(raw_version or 0), monitors)
        return monitors

    def content(self, key: str) -> Content | None:
        """A collection or environment, read again only when its stamp changed."""
        revision = self.redis.hget(self.stamps_key, key)
        if revision is None:
            return None
        with self._cache_lock:
            cached = self._content.get(key)
        if cached is not None and _revision(cached) == _text(revision):
            return cached
        raw = self.redis.hget(self.content_key, key)
        if raw is None:
            return None
        entry = self.sealer.open_json(raw)
        content = Content(entry["stamp"], entry["body"])
        with self._cache_lock:
            self._content[key] = content
        return content


def _next_slot(monitor: Monitor, now: datetime) -> int:
    return int(monitor.schedule.next_slot(now).timestamp())


def _revision(content: Content) -> str:
    """What identifies a content version: its stamp, or a digest when it has none."""
    if content.stamp:
        return content.stamp
    canonical = json.dumps(content.body, sort_keys=True, separators=(",", ":"))
    return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()[:24]


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
