"""Every working process serves the cluster's metrics, and they agree with each other and /health.

A real worker (``celery -A worker worker``) and a real beat (``celery -A
worker beat``) run as subprocesses with ``PMRUNNER_METRICS_PORT``; the API
serves its own ``/metrics``. Messages wait in a queue nobody consumes, a
monitor runs through the worker; then all three scrapes show the same queue
depths and ages, workers per network, request latency and assertion
failures, and ``/health`` the same workers and queues. The shipped Grafana
dashboard queries only metrics such a scrape holds.
"""

from __future__ import annotations

import dataclasses
import json
import re
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import promql_parser
import pytest
import requests
from celery import Celery
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.api_helpers import (  # noqa: F401 (fixtures)
    AUTH,
    MONITOR_UID,
    api_settings_fixture,
    echo_url_fixture,
    free_port,
    served,
)
from tests.integration.conftest import ROOT, ChildProcess, WorkerProcess, wait_until
from worker.settings import Settings

pytestmark = pytest.mark.integration
DASHBOARD = ROOT / "deploy" / "grafana" / "pmrunner.json"
WAITING = 3  # messages sent to a network no worker consumes
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


@pytest.fixture()
def cluster_settings(api_settings: Settings, tmp_path: Path) -> Settings:
    """The API test's settings (one monitor) with a networks file naming two more networks."""
    tag = api_settings.default_network
    networks = tmp_path / "networks.yaml"
    networks.write_text(
        json.dumps({"networks": {f"a{tag}": ["10.1.0.0/16"], f"b{tag}": ["10.2.0.0/16"]}})
    )
    return dataclasses.replace(api_settings, networks_file=networks)


def scrape(port: int) -> str:
    return requests.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text


def samples(text: str, *names: str) -> Samples:
    """The samples of the named metrics: (name, sorted labels) -> value."""
    found: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name in names:
                found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def serves(port: int, metric: str) -> bool:
    try:
        return f"# TYPE {metric}" in scrape(port)
    except requests.ConnectionError:
        return False


@pytest.fixture()
def beat(cluster_settings: Settings, tmp_path: Path) -> Iterator[tuple[int, Path]]:
    """``celery -A worker beat`` serving metrics, started in an empty working directory."""
    port = free_port()
    cwd = tmp_path / "beat-cwd"
    cwd.mkdir()
    process = ChildProcess(
        cluster_settings,
        [sys.executable, "-m", "celery", "-A", "worker", "beat", "-l", "INFO"],
        {"PMRUNNER_METRICS_PORT": str(port), "PYTHONPATH": str(ROOT)},
        cwd=cwd,
    )
    try:
        yield port, cwd
    finally:
        process.stop()


def test_worker_beat_and_api_serve_the_same_cluster_metrics_as_health(
    app: Celery,
    cluster_settings: Settings,
    beat: tuple[int, Path],
    worker_processes: list[WorkerProcess],
) -> None:
    settings = cluster_settings
    tag = settings.default_network
    idle_queue = settings.queue_for(f"b{tag}")
    for number in range(WAITING):
        app.send_task("pmrunner.never_consumed", (number,), queue=idle_queue)
    sent = time.time()

    worker_port = free_port()
    worker = WorkerProcess(
        settings,
        [settings.queue_for(tag), settings.queue_for(f"a{tag}")],
        "metrics",
        extra_env={"PMRUNNER_METRICS_PORT": str(worker_port)},
    )
    worker_processes.append(worker)
    worker.wait_ready(app)
    beat_port, _cwd = beat
    wait_until(lambda: serves(worker_port, "pmrunner_queue_depth"), what="worker metrics")
    wait_until(lambda: serves(beat_port, "pmrunner_queue_depth"), what="beat metrics")

    with served(dataclasses.replace(settings, api_key=AUTH["x-api-key"])) as api:
        ran = requests.post(f"{api}/monitors/{MONITOR_UID}/run", headers=AUTH, timeout=90)
        assert ran.status_code == 200, ran.text
        health = requests.get(f"{api}/health", timeout=10).json()
        scrapes = {
            "api": requests.get(f"{api}/metrics", timeout=10).text,
            "worker": scrape(worker_port),
            "beat": scrape(beat_port),
        }
        health_after = requests.get(f"{api}/health", timeout=10).json()
    waited = time.time() - sent

    cluster_names = (
        "pmrunner_queue_depth",
        "pmrunner_workers_online",
        "pmrunner_workers_alive",
        "pmrunner_request_duration_seconds_count",
        "pmrunner_request_duration_seconds_bucket",
        "pmrunner_assertion_failures_total",
        "pmrunner_monitor_runs_total",
    )
    seen = {name: samples(text, *cluster_names) for name, text in scrapes.items()}
    assert seen["api"] == seen["worker"] == seen["beat"]
    figures = seen["api"]

    # Queues: the idle network's messages wait; the worker's queues are empty.
    assert figures[("pmrunner_queue_depth", (("queue", idle_queue),))] == WAITING
    assert figures[("pmrunner_queue_depth", (("queue", settings.queue_for(tag)),))] == 0
    assert figures[("pmrunner_queue_depth", (("queue", settings.control_queue),))] == 0
    for text in scrapes.values():
        ages = samples(text, "pmrunner_queue_oldest_message_age_seconds")
        age = ages[("pmrunner_queue_oldest_message_age_seconds", (("queue", idle_queue),))]
        assert 0 < age <= waited + 1
    # Workers: one per network it consumes, none on the idle one.
    assert figures[("pmrunner_workers_online", (("network", f"a{tag}"),))] == 1
    assert figures[("pmrunner_workers_online", (("network", tag),))] == 1
    assert figures[("pmrunner_workers_online", (("network", f"b{tag}"),))] == 0
    assert figures[("pmrunner_workers_alive", ())] == 1
    # Runs: two requests on the default network, one failed assertion, one failed run.
    labels = (("monitor", MONITOR_UID), ("network", tag))
    assert figures[("pmrunner_request_duration_seconds_count", labels)] == 2
    inf_bucket = (("le", "+Inf"), *labels)
    assert figures[("pmrunner_request_duration_seconds_bucket", tuple(sorted(inf_bucket)))] == 2
    assert figures[("pmrunner_assertion_failures_total", (("monitor", MONITOR_UID),))] == 1
    assert (
        figures[("pmrunner_monitor_runs_total", (("monitor", MONITOR_UID), ("status", "failed")))]
        == 1
    )

    # /health tells the same story.
    for body in (health, health_after):
        assert body["workers"] == {"alive": 1, "online": {tag: 1, f"a{tag}": 1, f"b{tag}": 0}}
        assert body["queues"][idle_queue]["depth"] == WAITING
        assert body["queues"][settings.queue_for(tag)]["depth"] == 0
        assert 0 < body["queues"][idle_queue]["oldestAgeSeconds"] <= waited + 1

    # Every metric the Grafana dashboard queries is one a real process serves.
    exported = exported_sample_names(scrapes["worker"])
    queried = dashboard_metrics(json.loads(DASHBOARD.read_text()))
    assert queried, "the dashboard queries no pmrunner metric"
    assert queried <= exported, sorted(queried - exported)
    assert {
        "pmrunner_queue_depth",
        "pmrunner_queue_oldest_message_age_seconds",
        "pmrunner_workers_online",
        "pmrunner_monitor_runs_total",
        "pmrunner_request_duration_seconds_bucket",
        "pmrunner_assertion_failures_total",
    } <= queried


SUFFIXES = {
    "counter": ("_total", "_created"),
    "histogram": ("_bucket", "_count", "_sum", "_created"),
    "gauge": ("",),
    "summary": ("", "_count", "_sum", "_created"),
}


def exported_sample_names(text: str) -> set[str]:
    """Every sample name the scrape's families can have (a family without samples too)."""
    names: set[str] = set()
    for line in text.splitlines():
        match = re.match(r"# TYPE (\S+) (\S+)", line)
        if match:
            family, kind = match.groups()
            if kind == "counter":  # the text format names a counter with its "_total"
                family = family.removesuffix("_total")
            names.update(family + suffix for suffix in SUFFIXES.get(kind, ("",)))
    return names


def dashboard_metrics(dashboard: dict[str, object]) -> set[str]:
    """The metric names every PromQL expression of a Grafana dashboard selects (each must parse)."""
    names: set[str] = set()

    def visit(node: object) -> bool:
        if isinstance(node, promql_parser.VectorSelector) and node.name:
            names.add(node.name)
        return True

    for expression in expressions(dashboard):
        # Grafana's interval variables become a duration before Prometheus sees them.
        concrete = expression.replace("$__rate_interval", "5m").replace("$__interval", "1m")
        promql_parser.walk(promql_parser.parse(concrete), visit)
    return names


def expressions(node: object) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "expr" and isinstance(value, str):
                yield value
            else:
                yield from expressions(value)
    elif isinstance(node, list):
        for item in node:
            yield from expressions(item)


def test_beat_writes_no_schedule_file_in_its_working_directory(
    beat: tuple[int, Path],
) -> None:
    port, cwd = beat
    wait_until(lambda: serves(port, "pmrunner_queue_depth"), what="beat started")
    time.sleep(3)  # a few of beat's ticks, where Celery's default scheduler syncs its file
    assert list(cwd.iterdir()) == []
