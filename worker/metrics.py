"""Prometheus metrics of a pmrunner process.

Counters and gauges live in the process that does the work (a worker, or
``pmrunner runner start``); ``start_metrics_server`` serves them on
``/metrics`` for Prometheus to scrape. Monitor runs by monitor and status
(``pmrunner_monitor_runs_total``) are read from the run store when scraped,
so every process that serves metrics shows the same counts.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client import Counter, Histogram, start_http_server
from prometheus_client.core import CounterMetricFamily

from pmrunner.scraped import ScrapedCollector, register_scraped

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


def start_metrics_server(port: int, address: str) -> None:
    """Serve ``/metrics`` on ``address:port`` from a background thread.

    Parameters:
        port: the TCP port.
        address: the address to listen on (``PMRUNNER_METRICS_HOST``).
    """
    start_http_server(port, addr=address)


class MonitorRunsCollector(ScrapedCollector[dict[tuple[str, str], int]]):
    """``pmrunner_monitor_runs_total{monitor, status}``, read from the run store when scraped.

    Args:
        lookup: (monitor uid, status) → runs stored (``RunStore.monitor_run_counts``).
    """

    def families(self, counts: dict[tuple[str, str], int]) -> Iterator[CounterMetricFamily]:
        runs = CounterMetricFamily(
            "pmrunner_monitor_runs",
            "Monitor runs stored by every process (started or not), by monitor and status",
            labels=["monitor", "status"],
        )
        for (monitor, status), count in sorted(counts.items()):
            runs.add_metric([monitor, status], count)
        yield runs


def register_monitor_run_counts(lookup: Callable[[], dict[tuple[str, str], int]]) -> None:
    """Serve the stored monitor run counts in this process's metrics (the latest wins)."""
    register_scraped(MonitorRunsCollector, lookup)
