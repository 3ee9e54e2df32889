"""Every metric read from Redis when scraped is one kind of collector; Redis away is no error."""

from __future__ import annotations

from typing import Any

import pytest
import redis
from prometheus_client import CollectorRegistry, generate_latest

from pmrunner.scraped import ScrapedCollector
from scheduler.health import SourceHealth, SourceHealthCollector
from store.run_metrics import RunMetrics
from tasks.observe import ClusterCollector, ClusterState, RunMetricsCollector
from worker.metrics import MonitorRunsCollector

COLLECTORS: list[tuple[type[ScrapedCollector[Any]], Any, str]] = [
    (ClusterCollector, ClusterState(), "pmrunner_workers_alive 0.0"),
    (RunMetricsCollector, RunMetrics(), "# TYPE pmrunner_assertion_failures_total counter"),
    (MonitorRunsCollector, {("m-1", "failed"): 2}, 'monitor="m-1",status="failed"} 2.0'),
    (SourceHealthCollector, SourceHealth("healthy", None), "pmrunner_monitor_source_healthy 1.0"),
]


def redis_away() -> Any:
    raise redis.ConnectionError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")


@pytest.mark.parametrize(("collector", "figures", "shown"), COLLECTORS)
def test_a_collector_shows_what_its_lookup_reads(
    collector: type[ScrapedCollector[Any]], figures: Any, shown: str
) -> None:
    assert issubclass(collector, ScrapedCollector)
    registry = CollectorRegistry()
    registry.register(collector(lambda: figures))
    assert shown in generate_latest(registry).decode()


@pytest.mark.parametrize(("collector", "figures", "shown"), COLLECTORS)
def test_with_redis_away_a_collector_shows_nothing_and_the_rest_is_served(
    collector: type[ScrapedCollector[Any]], figures: Any, shown: str
) -> None:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector(redis_away))
    registry.register(MonitorRunsCollector(lambda: {("other", "finished"): 1}))
    text = generate_latest(registry).decode()
    assert 'monitor="other",status="finished"} 1.0' in text
    if collector is not MonitorRunsCollector:
        assert shown not in text
