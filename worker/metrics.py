"""Prometheus metrics of a pmrunner process.

Counters and gauges live in the process that does the work (a worker, or
``pmrunner runner start``); ``start_metrics_server`` serves them on
``/metrics`` for Prometheus to scrape.
"""

from __future__ import annotations

from prometheus_client import Counter, Histogram, start_http_server

RUNS_FINISHED = Counter(
    "pmrunner_runs_finished_total", "Runs reported, by outcome and source", ["status", "source"]
)
REQUESTS_EXECUTED = Counter(
    "pmrunner_requests_total", "Requests executed by this process, by network", ["network"]
)
SLOTS_STARTED = Counter("pmrunner_monitor_slots_started_total", "Monitor schedule slots started")
SLOTS_SKIPPED = Counter("pmrunner_monitor_slots_skipped_total", "Monitor schedule slots skipped")
SLOT_LAG = Histogram(
    "pmrunner_monitor_slot_lag_seconds",
    "From a slot's time to its run being started by the tick",
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30),
)
RUNS_SWEPT = Counter("pmrunner_runs_swept_total", "Runs ended by the sweeper at their deadline")


def start_metrics_server(port: int, address: str = "0.0.0.0") -> None:
    """Serve ``/metrics`` on ``address:port`` from a background thread."""
    start_http_server(port, addr=address)
