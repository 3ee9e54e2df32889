"""What every pmrunner process's ``/metrics`` and the API's ``/health`` show of the cluster.

Each process serves its own metrics, so whatever describes the cluster is
read from Redis when scraped, and every process agrees (an API, a scheduler
and a worker scraped at the same moment give the same figures):

- ``pmrunner_queue_depth{queue}``, ``pmrunner_queue_oldest_message_age_seconds{queue}``:
  messages waiting in each network queue (``net.<name>``) and the control
  queue, and how long the oldest has waited (``worker.queues``);
- ``pmrunner_workers_online{network}``: live workers (by heartbeat) consuming
  each network's queue; ``pmrunner_workers_alive``: every live worker;
- ``pmrunner_request_duration_seconds{monitor, network}`` (histogram) and
  ``pmrunner_assertion_failures_total{monitor}``: from stored runs
  (``store.run_metrics``);
- the monitor run counts and the monitor source's state (``worker.metrics``,
  ``scheduler.health``).

The queues watched are the control queue, the queue of every network the
networks file names (and the default network's), and every queue a live
worker consumes.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import redis
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

from pmrunner.errors import PmrunnerError
from pmrunner.scraped import ScrapedCollector, register_scraped
from scheduler.catalog_source import CatalogSource
from scheduler.health import SourceHealth, register_source_metrics
from store import Keys, RunStore
from store.run_metrics import RunMetrics, read_run_metrics
from store.workers import WorkerBook
from worker.metrics import register_monitor_run_counts
from worker.queues import QueueState, queue_states
from worker.routing import NetworkMap
from worker.settings import Settings

# A scrape (or /health) with Redis away answers in seconds, not after minutes of retries.
SCRAPE_REDIS_TIMEOUT = 2.0
NETWORK_QUEUE_PREFIX = "net."


@dataclass(frozen=True)
class ClusterState:
    """Live workers and waiting messages, as Redis holds them at one moment.

    Parameters:
        consumers: live worker -> the queues it consumes.
        queues: every watched queue's depth and oldest message age.
    """

    consumers: dict[str, list[str]] = field(default_factory=dict)
    queues: list[QueueState] = field(default_factory=list)

    def networks(self) -> list[str]:
        """The networks of the watched queues."""
        return [network_of(q.name) for q in self.queues if q.name.startswith(NETWORK_QUEUE_PREFIX)]

    def workers_online(self) -> dict[str, int]:
        """Network -> live workers consuming its queue (0 for a network none consumes)."""
        online = dict.fromkeys(self.networks(), 0)
        for queues in self.consumers.values():
            for network in {network_of(q) for q in queues if q.startswith(NETWORK_QUEUE_PREFIX)}:
                online[network] = online.get(network, 0) + 1
        return online

    def to_health(self) -> dict[str, object]:
        """The ``workers`` and ``queues`` objects of ``/health``."""
        return {
            "workers": {"alive": len(self.consumers), "online": self.workers_online()},
            "queues": {queue.name: queue.to_dict() for queue in self.queues},
        }


def network_of(queue: str) -> str:
    return queue[len(NETWORK_QUEUE_PREFIX) :]


def watched_queues(settings: Settings, consumers: dict[str, list[str]]) -> list[str]:
    """The control queue, every configured network's queue, and every queue a worker consumes."""
    try:
        names = NetworkMap.load(settings.networks_file, settings.default_network).names
    except PmrunnerError:  # a broken networks file: the workers' own queues still show
        names = frozenset({settings.default_network})
    queues = {settings.control_queue, *(settings.queue_for(name) for name in names)}
    for consumed in consumers.values():
        queues.update(consumed)
    return sorted(queues)


def read_cluster(client: redis.Redis, settings: Settings) -> ClusterState:
    """The cluster's workers and queues now. Raises ``redis.RedisError`` when Redis is away."""
    consumers = WorkerBook(client, Keys(settings.key_prefix)).consumers()
    return ClusterState(consumers, queue_states(client, watched_queues(settings, consumers)))


class ClusterCollector(ScrapedCollector[ClusterState]):
    """Queue and worker gauges, read from Redis when scraped.

    Args:
        lookup: the cluster's state now (``read_cluster``).
    """

    def families(self, state: ClusterState) -> Iterator[GaugeMetricFamily]:
        depth = GaugeMetricFamily(
            "pmrunner_queue_depth", "Messages waiting in the queue", labels=["queue"]
        )
        age = GaugeMetricFamily(
            "pmrunner_queue_oldest_message_age_seconds",
            "Seconds the queue's oldest waiting message has waited (0 when empty)",
            labels=["queue"],
        )
        for queue in state.queues:
            depth.add_metric([queue.name], queue.depth)
            age.add_metric([queue.name], math.nan if queue.oldest_age is None else queue.oldest_age)
        online = GaugeMetricFamily(
            "pmrunner_workers_online",
            "Live workers (by heartbeat) consuming the network's queue",
            labels=["network"],
        )
        for network, count in sorted(state.workers_online().items()):
            online.add_metric([network], count)
        yield depth
        yield age
        yield online
        yield GaugeMetricFamily(
            "pmrunner_workers_alive", "Live workers (by heartbeat)", value=len(state.consumers)
        )


class RunMetricsCollector(ScrapedCollector[RunMetrics]):
    """Request latency and assertion failures of every stored run, read when scraped.

    Args:
        lookup: the counts stored runs added (``read_run_metrics``).
    """

    def families(
        self, metrics: RunMetrics
    ) -> Iterator[HistogramMetricFamily | CounterMetricFamily]:
        latency = HistogramMetricFamily(
            "pmrunner_request_duration_seconds",
            "Response time of the requests of stored runs, by monitor (empty: none) and network",
            labels=["monitor", "network"],
        )
        for (monitor, network), histogram in sorted(metrics.latency.items()):
            latency.add_metric([monitor, network], histogram.cumulative(), histogram.total_seconds)
        failures = CounterMetricFamily(
            "pmrunner_assertion_failures",
            "Failed assertions of stored runs, by monitor (empty: no monitor)",
            labels=["monitor"],
        )
        for monitor, count in sorted(metrics.assertions_failed.items()):
            failures.add_metric([monitor], count)
        yield latency
        yield failures


def scrape_client(settings: Settings) -> redis.Redis:
    """A Redis client with short timeouts, for scrapes and health checks."""
    return redis.Redis.from_url(
        settings.redis_url,
        socket_connect_timeout=SCRAPE_REDIS_TIMEOUT,
        socket_timeout=SCRAPE_REDIS_TIMEOUT,
    )


def source_health(settings: Settings) -> SourceHealth | None:
    """The monitor source's health (blocking); None when no source is configured.

    Postman's comes from the poller's record in Redis (only the poller polls);
    local files are read here, which is cheap.
    """
    from tasks.monitors import source_for  # builds the monitor sources: loaded when asked

    try:
        source = source_for(settings)
    except PmrunnerError as error:  # a configuration that cannot build a source
        return SourceHealth("unhealthy", str(error))
    if source is None:
        return None
    if isinstance(source, CatalogSource):
        return source.health()
    active = sum(1 for monitor in source.monitors() if monitor.active)
    if not source.healthy:
        return SourceHealth("unhealthy", source.last_error, monitors=active)
    # A local file is read now: its last good read is this one.
    return SourceHealth("healthy", None, time.time(), 0.0, active)


def register_cluster_metrics(settings: Settings, client: redis.Redis) -> None:
    """Serve everything this module describes in this process's metrics (the latest wins).

    Parameters:
        settings: the cluster's settings (queues, networks, key prefix).
        client: Redis, with short timeouts (``scrape_client``).
    """
    keys = Keys(settings.key_prefix)
    register_scraped(ClusterCollector, lambda: read_cluster(client, settings))
    register_scraped(RunMetricsCollector, lambda: read_run_metrics(client, keys))
    register_monitor_run_counts(RunStore(client, keys).monitor_run_counts)
    register_source_metrics(lambda: source_health(settings))
