"""The scheduler under load: N monitors every minute, all due in the same second.

    python bench/bench_tick.py [--monitors 1000] [--workers 2] [--redis URL]

Puts N monitors (6-field cron ``S * * * * *``: every minute, at second S, a
slot about 20 s after the start) in a catalog in Redis (database 12 of the
local Redis by default, under a throw-away prefix), each running a
one-request collection against a loopback target (a child process that logs
when each request arrives). Sealing is on (``PMRUNNER_SECRET_KEY`` set), as
by default. Runs the real tick (``Ticker.run``, its thread) and real Celery
workers (``--workers`` processes, threads pool) consuming the runs. Prints:

- the lag from the slot to the run's start by the tick (messages in the
  queue): the dispatch alone;
- the lag from the slot to the first request of each run seen by the target:
  dispatch, the worker's queue and the request together;
- the lag from the slot to each run's report (stored, waiters told), and
  the workers' CPU until the last first request and until the last report;
- the scheduling CPU per run (CPU time of the tick's thread from the first
  tick until every run started, over N), against the 3 ms target;
- the machine's load average and core count.

Removes its keys and queues and stops its children afterwards.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import threading
import time
import uuid
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import redis
from common import ROOT

from scheduler.catalog import Catalog
from scheduler.catalog_source import CatalogSource
from scheduler.health import SourceHealth
from scheduler.monitors import Monitor
from scheduler.schedule import Schedule
from scheduler.snapshot import Content, Snapshot, collection_key
from tasks.context import Services
from tasks.dispatch import RunRequest, start_run
from tasks.finalize import wait_for_report
from tasks.schedule import Ticker
from worker.app import create_app, worker_command
from worker.settings import Settings

TARGET_CPU_MS = 3.0
TARGET_LAG_P99 = 1.0
LEAD_SECONDS = 20


class _Arrivals(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        print(f"{time.time():.6f}", flush=True)
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""


def serve_target() -> None:
    """The loopback target (a child process): prints its port, then each arrival's time."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Arrivals)
    server.daemon_threads = True
    print(server.server_address[1], flush=True)
    server.serve_forever()


def read_arrivals(target: subprocess.Popen[str], arrivals: list[float]) -> None:
    for line in target.stdout or []:
        arrivals.extend(float(stamp) for stamp in re.findall(r"\d+\.\d{6}", line))


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time of processes so far (Linux /proc)."""
    total = 0
    for pid in pids:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def collection(port: int) -> dict[str, Any]:
    url = f"http://127.0.0.1:{port}/hit"
    return {
        "info": {"_postman_id": "bench-tick", "name": "tick"},
        "item": [{"name": "hit", "request": {"method": "GET", "url": url}}],
    }


def commit_monitors(catalog: Catalog, count: int, port: int) -> float:
    """``count`` monitors every minute at one second about LEAD_SECONDS from now; that slot."""
    now = time.time()
    second = int(now + LEAD_SECONDS) % 60
    schedule = Schedule.from_cron(f"{second} * * * * *")
    snapshot = Snapshot(content={collection_key("1-bench-tick"): Content("s", collection(port))})
    for n in range(count):
        uid = f"1-monitor-{n}"
        snapshot.monitors[uid] = Monitor(
            uid=uid,
            name=f"monitor {n}",
            schedule=schedule,
            source="postman",
            collection="1-bench-tick",
            environment=None,
        )
    moment = datetime.fromtimestamp(now, UTC)
    catalog.commit(snapshot, moment)
    return schedule.next_slot(moment).timestamp()


def reports_seen(services: Services, run_ids: list[str], deadline: float) -> list[float]:
    """When each run's report was stored (seen within 0.1 s), until ``deadline``."""
    keys = {run_id: services.registry.keys.run_finished(run_id) for run_id in run_ids}
    seen: list[float] = []
    waiting = list(run_ids)
    while waiting and time.time() < deadline:
        pipe = services.registry.redis.pipeline(transaction=False)
        for run_id in waiting:
            pipe.exists(keys[run_id])
        now = time.time()
        found = pipe.execute()
        seen += [now] * sum(1 for hit in found if hit)
        waiting = [run_id for run_id, hit in zip(waiting, found, strict=True) if not hit]
        time.sleep(0.1)
    return seen


def percentiles(values: list[float]) -> str:
    if not values:
        return "none"
    ordered = sorted(values)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * len(ordered)) - 1)]
    return (
        f"p50 {statistics.median(ordered) * 1000:7.0f} ms  p99 {p99 * 1000:7.0f} ms  "
        f"max {ordered[-1] * 1000:7.0f} ms"
    )


def start_workers(settings: Settings, count: int) -> list[subprocess.Popen[bytes]]:
    env = {**os.environ, **settings.to_env()}
    queue = settings.queue_for(settings.default_network)
    return [
        subprocess.Popen(
            worker_command([queue], concurrency=32, name=f"tick{n}@%h"),
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        for n in range(count)
    ]


def warm_workers(app: Any, port: int, count: int) -> None:
    """Wait until every worker answers, and run once through each."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if len(app.control.ping(timeout=1.0) or []) >= count:
            break
    else:
        raise SystemExit("the workers did not start within 60 s")
    services = Services.of(app)
    runs = [start_run(app, RunRequest(collection(port))) for _ in range(count * 4)]
    for run_id in runs:
        if wait_for_report(services, run_id, 60) is None:
            raise SystemExit(f"warm-up run {run_id} did not report")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--monitors", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/12")
    parser.add_argument("--serve-target", action="store_true", help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.serve_target:
        serve_target()
        return
    tag = uuid.uuid4().hex[:8]
    settings = Settings(
        redis_url=options.redis,
        key_prefix=f"pmrbench:{tag}:",
        default_network=f"bench{tag}",
        secret_key=f"bench-{tag}",
    )
    client = redis.Redis.from_url(options.redis)
    target = subprocess.Popen(
        [sys.executable, __file__, "--serve-target"], stdout=subprocess.PIPE, text=True
    )
    assert target.stdout is not None
    port = int(target.stdout.readline())
    arrivals: list[float] = []
    reader = threading.Thread(target=read_arrivals, args=(target, arrivals), daemon=True)
    reader.start()
    workers = start_workers(settings, options.workers)
    app = create_app(settings)
    load_before = os.getloadavg()
    try:
        warm_workers(app, port, options.workers)
        time.sleep(0.5)
        warm = len(arrivals)
        services = Services.of(app)
        catalog = Catalog(
            client, settings.key_prefix, settings.max_staleness, services.registry.sealer
        )
        started: list[tuple[float, float]] = []
        run_ids: list[str] = []
        source = CatalogSource(catalog, None, poll_interval=settings.poll_interval)
        ticker = Ticker(
            services,
            catalog,
            source,
            lambda: SourceHealth("healthy", None, time.time()),
            observer=lambda run, slot, sent: (run_ids.append(run), started.append((slot, sent))),
        )
        slot = commit_monitors(catalog, options.monitors, port)
        worker_cpu = cpu_seconds([worker.pid for worker in workers])
        stop = threading.Event()
        cpu: list[float] = []

        def tick_thread() -> None:
            begin = time.thread_time()
            ticker.run(stop)
            cpu.append(time.thread_time() - begin)

        thread = threading.Thread(target=tick_thread, name="bench-tick")
        thread.start()
        cpu_at_last_start: list[float] = []
        deadline = slot + 120
        while time.time() < deadline and len(started) < options.monitors:
            time.sleep(0.05)
        stop.set()
        thread.join(10)
        cpu_at_last_start = cpu
        while time.time() < deadline and len(arrivals) - warm < options.monitors:
            time.sleep(0.1)
        worker_cpu_requests = cpu_seconds([worker.pid for worker in workers]) - worker_cpu
        reported = reports_seen(services, run_ids, deadline)
        worker_cpu = cpu_seconds([worker.pid for worker in workers]) - worker_cpu
        load_after = os.getloadavg()
    finally:
        for worker in workers:
            worker.terminate()
        for worker in workers:
            try:
                worker.wait(20)
            except subprocess.TimeoutExpired:
                worker.kill()
        target.terminate()
        target.wait(10)
        for key in client.scan_iter(f"*{tag}*"):
            client.delete(key)
    dispatch = [sent - at for at, sent in started]
    requests = [arrived - slot for arrived in arrivals[warm:]]
    cpu_ms = (cpu_at_last_start[0] if cpu_at_last_start else float("nan")) / options.monitors * 1000
    p99 = sorted(requests)[int(0.99 * len(requests)) - 1] if requests else float("inf")
    print(
        f"{options.monitors} monitors every minute, all due at "
        f"{datetime.fromtimestamp(slot, UTC):%H:%M:%S}; {options.workers} worker processes "
        f"(threads, 32 each); sealing on"
    )
    print(
        f"machine: {os.cpu_count()} cores, load average {load_before[0]:.2f} before, "
        f"{load_after[0]:.2f} after"
    )
    print(f"runs started by the tick: {len(started)}; first requests seen: {len(requests)}")
    print(f"slot -> run started (dispatch alone):  {percentiles(dispatch)}")
    print(f"slot -> first request at the target:   {percentiles(requests)}")
    print(f"slot -> run reported:                  {percentiles([at - slot for at in reported])}")
    print(
        f"workers' CPU until the last first request {worker_cpu_requests:.1f} s "
        f"({worker_cpu_requests / options.monitors * 1000:.1f} ms a run, {os.cpu_count()} cores):"
        " the floor of its lag; until the last report"
        f" {worker_cpu:.1f} s ({worker_cpu / options.monitors * 1000:.1f} ms a run)"
    )
    print(
        f"scheduling CPU per run {cpu_ms:.2f} ms; target {TARGET_CPU_MS} ms: ratio "
        f"{cpu_ms / TARGET_CPU_MS:.2f} ({'MET' if cpu_ms <= TARGET_CPU_MS else 'MISSED'})"
    )
    print(
        f"lag p99 slot -> first request {p99:.2f} s; target {TARGET_LAG_P99} s: "
        f"{'MET' if p99 < TARGET_LAG_P99 else 'MISSED'}"
    )


if __name__ == "__main__":
    main()
