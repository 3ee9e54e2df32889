"""Time to a first full sync of N Postman monitors, and the calls per poll, within its limits.

    python bench/bench_sync.py [--monitors 1000] [--per-collection 10] [--redis URL]

Serves N monitors (one collection and one environment per ``--per-collection``
monitors) from the test suite's fake Postman on loopback, which enforces
Postman's limits per key (10 calls in any 10 s on monitor endpoints, 300 a
minute) and answers 429 to any call over them. Then runs pmrunner's poller
at default settings (the cluster's shared budget in Redis, the default poll
interval) and prints:

- the first poll (a full sync: every monitor's details, every collection and
  environment): its calls, by kind, and its wall time, next to the least
  time Postman's limits allow for those calls (the floor);
- the next poll: its calls and time (a steady poll: the listing, the
  collection and environment stamps, and a share of the monitors' details);
- the 429 answers the limits gave (the budget's promise: 0), and the most
  calls to monitor endpoints seen in any 10 s.

It needs Redis (``--redis``, default database 12 of the local one) and
removes its keys afterwards.
"""

from __future__ import annotations

import argparse
import dataclasses
import time
import uuid
from collections import Counter

import redis
from common import ROOT  # noqa: F401 - puts the repository on sys.path

from scheduler.catalog import Catalog
from scheduler.poller import Lease, Poller
from scheduler.postman_source import PostmanMonitorSource
from tasks.monitors import build_source
from tests.fakes.fake_postman import FakePostman
from worker.settings import Settings

# Postman's limits: what no sync can beat.
MONITOR_CALLS_PER_SECOND_LIMIT = 1.0
ALL_CALLS_PER_SECOND_LIMIT = 5.0


def populate(postman: FakePostman, monitors: int, per_collection: int) -> None:
    """``monitors`` monitors in ws-default, sharing collections and environments."""
    collection = environment = ""
    for n in range(monitors):
        if n % per_collection == 0:
            collection = postman.add_collection(name=f"c{n}")
            environment = postman.add_environment(f"e{n}", {"baseUrl": "http://127.0.0.1:9"})
        postman.add_monitor(
            f"monitor {n}", collection_uid=collection, environment_uid=environment, cron="* * * * *"
        )


def kinds(postman: FakePostman, since: int) -> Counter[str]:
    """Calls since request number ``since``, by endpoint kind."""
    counted: Counter[str] = Counter()
    for request in postman.requests[since:]:
        parts = request.path.strip("/").split("/")
        counted[parts[0] + ("/{uid}" if len(parts) > 1 else "")] += 1
    return counted


def floor_seconds(calls: Counter[str]) -> float:
    """The least time Postman's limits allow for these calls."""
    monitor_calls = calls["monitors"] + calls["monitors/{uid}"]
    return max(
        monitor_calls / MONITOR_CALLS_PER_SECOND_LIMIT,
        sum(calls.values()) / ALL_CALLS_PER_SECOND_LIMIT,
    )


def busiest_10s(postman: FakePostman) -> int:
    times = sorted(r.at for r in postman.requests if r.path.startswith("/monitors"))
    return max((sum(1 for t in times if s <= t < s + 10) for s in times), default=0)


def timed_poll(poller: Poller, postman: FakePostman, label: str) -> None:
    since = len(postman.requests)
    began = time.monotonic()
    good = poller.poll_once()
    took = time.monotonic() - began
    calls = kinds(postman, since)
    floor = floor_seconds(calls)
    listed = ", ".join(f"{kind} {count}" for kind, count in sorted(calls.items()))
    print(f"{label}: {'good' if good else 'FAILED'}, {sum(calls.values())} calls ({listed})")
    print(
        f"  {took:8.1f} s   floor under Postman's limits {floor:8.1f} s   ratio {took / floor:.2f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--monitors", type=int, default=1000)
    parser.add_argument("--per-collection", type=int, default=10)
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/12")
    options = parser.parse_args()
    prefix = f"pmrbench:{uuid.uuid4().hex[:8]}:"
    client = redis.Redis.from_url(options.redis)
    with FakePostman() as postman:
        populate(postman, options.monitors, options.per_collection)
        settings = dataclasses.replace(
            Settings(redis_url=options.redis, key_prefix=prefix),
            postman_api_key=postman.api_key,
            postman_base_url=postman.url,
            postman_workspace="ws-default",
        )
        source = build_source(settings)
        assert isinstance(source, PostmanMonitorSource)
        catalog = Catalog(client, prefix, settings.max_staleness)
        poller = Poller(
            source,
            catalog,
            Lease(client, f"{prefix}poll:lease", 60),
            interval=settings.poll_interval,
            permanent_backoff=300,
            snapshot=source.snapshot,
            restore=source.restore,
        )
        print(f"{options.monitors} monitors, poll interval {settings.poll_interval:.0f} s")
        try:
            timed_poll(poller, postman, "first full sync")
            timed_poll(poller, postman, "next poll")
        finally:
            for key in client.scan_iter(f"{prefix}*"):
                client.delete(key)
        print(
            f"429 answers: {postman.rate_limited}; busiest 10 s on monitor endpoints: "
            f"{busiest_10s(postman)} calls (Postman allows 10)"
        )


if __name__ == "__main__":
    main()
