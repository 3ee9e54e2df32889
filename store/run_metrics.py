"""Counts derived from stored runs: request latency and assertion failures.

When a run's report is stored for the first time (``RunStore.save``), its
requests' response times and its failed assertions are added to one hash
(``Keys.run_metrics``) in the same step, so every process that serves
metrics reads the same figures, whichever process ran the requests.

Fields are JSON arrays:

- ``["latency", monitor, network, le]``: requests whose response time fell
  in the bucket that ends at ``le`` seconds (not cumulative; ``"+Inf"`` last);
- ``["latency_sum", monitor, network]``: their response times, in seconds;
- ``["assertions_failed", monitor]``: failed assertions.

``monitor`` is the monitor's uid, empty for runs of no monitor; ``network``
is where the request ran (empty for a request that ran in no network).
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import redis

from store.keys import Keys, text

JSON = dict[str, Any]
# Upper bounds of the latency buckets, in seconds (Prometheus's "le").
LATENCY_BUCKETS = (0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, math.inf)


@dataclass
class LatencyHistogram:
    """Response times of one monitor's requests on one network.

    Parameters:
        buckets: requests per bucket, in ``LATENCY_BUCKETS`` order (not cumulative).
        total_seconds: the sum of their response times.
    """

    buckets: list[int] = field(default_factory=lambda: [0] * len(LATENCY_BUCKETS))
    total_seconds: float = 0.0

    def cumulative(self) -> list[tuple[str, float]]:
        """Prometheus's buckets: (le, requests at or under it)."""
        running = 0
        pairs = []
        for bound, count in zip(LATENCY_BUCKETS, self.buckets, strict=True):
            running += count
            pairs.append((bucket_label(bound), float(running)))
        return pairs


@dataclass
class RunMetrics:
    """What ``read_run_metrics`` found.

    Parameters:
        latency: (monitor, network) -> its requests' response times.
        assertions_failed: monitor -> failed assertions.
    """

    latency: dict[tuple[str, str], LatencyHistogram] = field(default_factory=dict)
    assertions_failed: dict[str, int] = field(default_factory=dict)


def bucket_label(bound: float) -> str:
    return "+Inf" if math.isinf(bound) else repr(bound)


def increments(report: JSON) -> list[tuple[str, float]]:
    """The (field, amount) pairs one stored run adds (see the module documentation)."""
    monitor = str((report.get("monitor") or {}).get("uid") or "")
    added: dict[str, float] = defaultdict(float)
    failed = 0
    for execution in (report.get("run") or {}).get("executions") or []:
        failed += sum(
            1
            for assertion in execution.get("assertions") or []
            if not assertion.get("passed") and not assertion.get("skipped")
        )
        response = execution.get("response")
        if not response:
            continue
        seconds = float(response.get("response_time_ms") or 0) / 1000
        network = str(execution.get("network") or "")
        bound = next(b for b in LATENCY_BUCKETS if seconds <= b)
        added[json.dumps(["latency", monitor, network, bucket_label(bound)])] += 1
        added[json.dumps(["latency_sum", monitor, network])] += seconds
    if failed:
        added[json.dumps(["assertions_failed", monitor])] += failed
    return sorted(added.items())


def read_run_metrics(client: redis.Redis, keys: Keys) -> RunMetrics:
    """The counts every stored run added. Raises ``redis.RedisError`` when Redis is away."""
    metrics = RunMetrics()
    for raw_field, raw_value in client.hgetall(keys.run_metrics()).items():
        try:
            kind, *labels = json.loads(text(raw_field))
            value = float(text(raw_value))
        except (ValueError, TypeError):
            continue
        if kind == "assertions_failed" and len(labels) == 1:
            metrics.assertions_failed[str(labels[0])] = int(value)
        elif kind in ("latency", "latency_sum"):
            _add_latency(metrics, kind, labels, value)
    return metrics


def _add_latency(metrics: RunMetrics, kind: str, labels: list[Any], value: float) -> None:
    monitor, network = str(labels[0]), str(labels[1])
    histogram = metrics.latency.setdefault((monitor, network), LatencyHistogram())
    if kind == "latency_sum":
        histogram.total_seconds = value
        return
    bounds = [bucket_label(b) for b in LATENCY_BUCKETS]
    if len(labels) == 3 and labels[2] in bounds:
        histogram.buckets[bounds.index(labels[2])] = int(value)
