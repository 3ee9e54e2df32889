"""The run store: finished run reports, indexed per collection by start time.

A report is stored once, as JSON, with secrets already masked. Each
collection keeps a sorted index (newest first when listed) that the
Collection Runs API pages through with an opaque cursor; each monitor has
an index of its own runs (its last run, ``pmrunner runs list --monitor``),
and one index holds every run. Retention drops runs older than
``retention_days`` and keeps at most ``retention_runs`` per collection, from
every index.
"""

from __future__ import annotations

import builtins
import itertools
import json
import re
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import redis

from pmrunner.errors import InputError
from store import run_metrics
from store.keys import Keys, text

JSON = dict[str, Any]
SCAN_BATCH = 100
# A monitor's last run is the newest of this many that retention has not dropped.
LAST_RUN_CANDIDATES = 5
# A run id prefix shorter than this is not looked up.
MIN_RUN_ID_PREFIX = 6

# Store a report and index it; the first time a run is stored, a monitor's run is
# counted and the run's latencies and failed assertions are added (store.run_metrics),
# in the same step, so every process reads the same counts.
# KEYS: report, collection index, all runs, monitor run counts, the monitor's index,
# run metrics.
# ARGV: report JSON, score, run id, counts field ("" for a run of no monitor),
# then pairs of run metrics field and amount.
_SAVE = """
redis.call('SET', KEYS[1], ARGV[1])
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[3])
if ARGV[4] ~= '' then
  redis.call('ZADD', KEYS[5], ARGV[2], ARGV[3])
end
if redis.call('ZADD', KEYS[3], ARGV[2], ARGV[3]) == 1 then
  if ARGV[4] ~= '' then
    redis.call('HINCRBY', KEYS[4], ARGV[4], 1)
  end
  for i = 5, #ARGV, 2 do
    redis.call('HINCRBYFLOAT', KEYS[6], ARGV[i], ARGV[i + 1])
  end
end
"""


@dataclass
class RunPage:
    """One page of a collection's runs; next_cursor is None on the last page."""

    runs: list[JSON] = field(default_factory=list)
    total: int = 0
    next_cursor: str | None = None


# A cursor is a position in a collection's runs, newest first: the start time
# (ms) of the last run of a page, and that run's id when it is a plain one.
# api/openapi.yaml gives the same pattern, so every string it allows is a position.
CURSOR_PATTERN = re.compile(r"[0-9]{1,15}(?:_[0-9A-Za-z-]{1,64})?")


def encode_cursor(score: float, run_id: str) -> str:
    """The cursor after the run ``run_id`` that started at ``score`` (ms)."""
    position = str(int(score))
    cursor = f"{position}_{run_id}"
    return cursor if CURSOR_PATTERN.fullmatch(cursor) else position


def decode_cursor(cursor: str) -> tuple[float, str]:
    """The start time (ms) and run id (may be empty) a cursor names.

    Raises:
        InputError: the text does not match ``CURSOR_PATTERN``.
    """
    if not CURSOR_PATTERN.fullmatch(cursor):
        raise InputError(f"invalid cursor {cursor!r}")
    position, _, run_id = cursor.partition("_")
    return float(position), run_id


def monitor_uid(report: JSON) -> str | None:
    """The uid of the monitor a stored run belongs to; None for a run of no monitor."""
    uid = (report.get("monitor") or {}).get("uid")
    return str(uid) if uid else None


class RunStore:
    """Finished runs in Redis.

    Parameters:
        client: a Redis client.
        keys: key names.
        retention_days: runs older than this are dropped when new ones are saved.
        retention_runs: at most this many runs are kept per collection.
    """

    def __init__(
        self,
        client: redis.Redis,
        keys: Keys | None = None,
        *,
        retention_days: float = 30.0,
        retention_runs: int = 1000,
    ) -> None:
        self.redis = client
        self.keys = keys or Keys()
        self.retention_days = retention_days
        self.retention_runs = retention_runs
        self._save = client.register_script(_SAVE)

    def save(self, report: JSON) -> None:
        """Store a report (it needs ``id``, ``collectionId`` and ``startedAt_ms``).

        A monitor's run (``report["monitor"]["uid"]``) is also counted by
        monitor and status, once per run id (see :meth:`monitor_run_counts`), and
        its latencies and failed assertions are added to ``store.run_metrics``.
        """
        run_id = str(report["id"])
        index = self.keys.collection_runs(str(report["collectionId"]))
        monitor = monitor_uid(report)
        counted = f"{report['status']}:{monitor}" if monitor else ""
        self._save(
            keys=[
                self.keys.report(run_id),
                index,
                self.keys.all_runs(),
                self.keys.monitor_run_counts(),
                self.keys.monitor_runs(str(monitor or "")),
                self.keys.run_metrics(),
            ],
            args=[
                json.dumps(report),
                float(report["startedAt_ms"]),
                run_id,
                counted,
                *(part for pair in run_metrics.increments(report) for part in pair),
            ],
        )
        self._enforce_retention(index)

    def monitor_run_counts(self) -> dict[tuple[str, str], int]:
        """(monitor uid, status) → runs stored since the first (retention does not lower it)."""
        counts: dict[tuple[str, str], int] = {}
        for field_name, count in self.redis.hgetall(self.keys.monitor_run_counts()).items():
            status, _, monitor = text(field_name).partition(":")
            counts[(monitor, status)] = int(count)
        return counts

    def _enforce_retention(self, index: str) -> None:
        cutoff = (time.time() - self.retention_days * 86400) * 1000
        expired = [text(r) for r in self.redis.zrangebyscore(index, 0, cutoff)]
        overflow = self.redis.zcard(index) - len(expired) - self.retention_runs
        if overflow > 0:
            oldest = self.redis.zrange(index, len(expired), len(expired) + overflow - 1)
            expired += [text(r) for r in oldest]
        if not expired:
            return
        monitors: dict[str, builtins.list[str]] = {}
        for run_id, raw in zip(
            expired, self.redis.mget(map(self.keys.report, expired)), strict=True
        ):
            uid = monitor_uid(json.loads(raw)) if raw else None
            if uid:
                monitors.setdefault(uid, []).append(run_id)
        pipe = self.redis.pipeline()
        pipe.zrem(index, *expired)
        pipe.zrem(self.keys.all_runs(), *expired)
        for uid, run_ids in monitors.items():
            pipe.zrem(self.keys.monitor_runs(uid), *run_ids)
        pipe.delete(*(self.keys.report(run_id) for run_id in expired))
        pipe.execute()

    def get(self, run_id: str) -> JSON | None:
        raw = self.redis.get(self.keys.report(run_id))
        return json.loads(raw) if raw else None

    def has_collection(self, collection_id: str) -> bool:
        return bool(self.redis.exists(self.keys.collection_runs(collection_id)))

    def list(
        self,
        collection_id: str,
        *,
        cursor: str | None = None,
        limit: int = 10,
        status: str | None = None,
        source: str | None = None,
    ) -> RunPage:
        """A page of a collection's runs, newest first, filtered by status and source."""
        index = self.keys.collection_runs(collection_id)
        matches = self._matching(index, status, source)
        start = 0
        if cursor:
            score, run_id = decode_cursor(cursor)
            # Newest first: the page goes on after the cursor's run, or, when
            # retention dropped that run meanwhile, after its start time.
            start = next(
                (n + 1 for n, (_, r, _) in enumerate(matches) if r == run_id),
                next((n for n, (s, _, _) in enumerate(matches) if s < score), len(matches)),
            )
        page = matches[start : start + limit]
        has_more = start + limit < len(matches)
        next_cursor = encode_cursor(page[-1][0], page[-1][1]) if page and has_more else None
        return RunPage([report for _, _, report in page], len(matches), next_cursor)

    def _matching(
        self, index: str, status: str | None, source: str | None
    ) -> builtins.list[tuple[float, str, JSON]]:
        # Retention bounds an index to retention_runs entries, so reading it
        # whole (in batches) keeps totals exact under filters.
        found: builtins.list[tuple[float, str, JSON]] = []
        offset = 0
        while True:
            batch = cast(
                "builtins.list[tuple[bytes, float]]",
                self.redis.zrevrange(index, offset, offset + SCAN_BATCH - 1, withscores=True),
            )
            if not batch:
                return found
            offset += len(batch)
            raws = self.redis.mget([self.keys.report(text(r)) for r, _ in batch])
            for (run_id, score), raw in zip(batch, raws, strict=True):
                if raw is None:
                    continue
                report = json.loads(raw)
                if status and report.get("status") != status:
                    continue
                if source and report.get("source") != source:
                    continue
                found.append((float(score), text(run_id), report))

    # -- across collections: the command line's and the monitors' view ----------------------

    def recent(
        self,
        *,
        limit: int = 20,
        monitor: str | None = None,
        collection: Sequence[str] = (),
        status: str | None = None,
    ) -> builtins.list[JSON]:
        """The newest stored runs first, at most ``limit``, filtered.

        Parameters:
            monitor: only runs of this monitor (its uid, or its name).
            collection: only runs of a collection stored under one of these
                ids, or with one of these names.
            status: only runs with this status (``finished``, ``failed``).
        """
        index = self._index_for(monitor, collection)
        found: builtins.list[JSON] = []
        for report in self._newest_first(index):
            if status and report.get("status") != status:
                continue
            names = (report.get("collectionId"), report.get("collectionName"))
            if collection and not any(name in collection for name in names):
                continue
            if monitor and monitor not in _monitor_names(report):
                continue
            found.append(report)
            if len(found) >= limit:
                break
        return found

    def _index_for(self, monitor: str | None, collection: Sequence[str]) -> str:
        """An index that holds every run the filters can match: a monitor's, else all runs.

        A monitor's index serves only when ``monitor`` is a uid with runs (a
        name is matched run by run, over all runs).
        """
        if monitor and self.redis.exists(self.keys.monitor_runs(monitor)):
            return self.keys.monitor_runs(monitor)
        return self.keys.all_runs()

    def _newest_first(self, index: str) -> Iterator[JSON]:
        offset = 0
        while True:
            batch = [text(r) for r in self.redis.zrevrange(index, offset, offset + SCAN_BATCH - 1)]
            if not batch:
                return
            offset += len(batch)
            for raw in self.redis.mget([self.keys.report(run_id) for run_id in batch]):
                if raw is not None:  # dropped by retention meanwhile
                    yield json.loads(raw)

    def last_runs(self, monitor_uids: Iterable[str]) -> dict[str, JSON]:
        """uid → the newest stored run of that monitor, for the monitors that have one.

        A monitor with no indexed run may have runs stored before monitors
        had an index of their own: the first time that happens in a store,
        every stored run is indexed under its monitor (``fill_monitor_indexes``).
        """
        uids = builtins.list(dict.fromkeys(monitor_uids))
        newest, filled = self._newest_run_ids(uids)
        if not filled and not all(newest.values()):
            self.fill_monitor_indexes()
            newest, _ = self._newest_run_ids(uids)
        wanted = [run_id for ids in newest.values() for run_id in ids]
        if not wanted:
            return {}
        reports = dict(zip(wanted, self.redis.mget(map(self.keys.report, wanted)), strict=True))
        last: dict[str, JSON] = {}
        for uid, ids in newest.items():
            raw = next((reports[run_id] for run_id in ids if reports[run_id]), None)
            if raw is not None:
                last[uid] = json.loads(raw)
        return last

    def _newest_run_ids(
        self, uids: builtins.list[str]
    ) -> tuple[dict[str, builtins.list[str]], bool]:
        """uid → its newest indexed run ids; and whether older runs were indexed already."""
        pipe = self.redis.pipeline(transaction=False)
        for uid in uids:
            pipe.zrevrange(self.keys.monitor_runs(uid), 0, LAST_RUN_CANDIDATES - 1)
        pipe.exists(self.keys.monitor_runs_filled())
        *indexed, filled = pipe.execute()
        newest = {uid: [text(r) for r in ids] for uid, ids in zip(uids, indexed, strict=True)}
        return newest, bool(filled)

    def fill_monitor_indexes(self) -> None:
        """Index every stored run of a monitor under that monitor; then mark the store filled.

        Runs stored before monitors had an index of their own are only in the
        collection and all-runs indexes. One pass over the all-runs index, in
        batches, puts them in their monitor's; the mark makes it the only
        pass (``save`` indexes every later run). Two processes filling at once
        add the same entries.
        """
        members = self.redis.zscan_iter(self.keys.all_runs(), count=SCAN_BATCH)
        while batch := [(text(r), score) for r, score in itertools.islice(members, SCAN_BATCH)]:
            reports = self.redis.mget([self.keys.report(run_id) for run_id, _ in batch])
            pipe = self.redis.pipeline(transaction=False)
            for (run_id, score), raw in zip(batch, reports, strict=True):
                uid = monitor_uid(json.loads(raw)) if raw else None
                if uid:
                    pipe.zadd(self.keys.monitor_runs(uid), {run_id: score})
            pipe.execute()
        self.redis.set(self.keys.monitor_runs_filled(), "1")

    def find(self, run_id: str) -> JSON | None:
        """The run ``run_id``, or the one run whose id starts with it (6 characters at least).

        Raises:
            InputError: several runs start with ``run_id``.
        """
        report = self.get(run_id)
        if report is not None or len(run_id) < MIN_RUN_ID_PREFIX:
            return report
        pattern = re.sub(r"([*?\[\]\\])", r"\\\1", run_id) + "*"
        matches = {
            text(member)
            for member, _ in self.redis.zscan_iter(self.keys.all_runs(), match=pattern, count=1000)
        }
        if len(matches) > 1:
            shown = ", ".join(sorted(matches)[:5])
            raise InputError(f"run id {run_id!r} is ambiguous: it starts {shown}")
        return self.get(matches.pop()) if matches else None


def _monitor_names(report: JSON) -> tuple[str, ...]:
    """What names a run's monitor: its uid and its name."""
    meta = report.get("monitor") or {}
    return tuple(str(meta[key]) for key in ("uid", "name") if meta.get(key))
