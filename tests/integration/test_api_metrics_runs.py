"""Monitor runs by monitor and status in every process's /metrics, read from the run store.

A run that could not start is stored by the process that tried (the beat);
a run that ran is stored by a worker. The API and another process that never
ran anything show the same counts, taken from Redis when scraped.
"""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from collections.abc import Iterator
from datetime import timedelta

import pytest
import requests
from celery import Celery
from prometheus_client.parser import text_string_to_metric_families

from pmrunner.errors import InputError
from runtime.reporters.run_shapes import build_report
from runtime.results import Run, utc_now
from scheduler.monitors import Monitor
from tasks.context import Services
from tasks.monitors import monitor_meta, report_failed_start
from tests.integration.api_helpers import AUTH, free_port, served
from tests.integration.conftest import wait_until
from worker.settings import Settings

pytestmark = pytest.mark.integration
METRIC = "pmrunner_monitor_runs_total"
# A second process serving metrics as `pmrunner runner start --metrics-port` does.
METRICS_PROCESS = """
import dataclasses, sys, time
from pmrunner.cli.runner import start_metrics
from worker.settings import Settings
start_metrics(dataclasses.replace(Settings.from_env(), metrics_port=int(sys.argv[1])))
time.sleep(120)
"""


def monitor(uid: str) -> Monitor:
    return Monitor.from_dict(
        {
            "uid": uid,
            "name": uid,
            "schedule": {"cron": "0 0 1 1 *"},
            "source": "postman",
            "collection": f"12345678-coll-{uid}",
        }
    )


def monitor_runs(metrics_text: str) -> dict[tuple[str, str], float]:
    counts = {}
    for family in text_string_to_metric_families(metrics_text):
        for sample in family.samples:
            if sample.name == METRIC:
                counts[(sample.labels["monitor"], sample.labels["status"])] = sample.value
    return counts


@pytest.fixture()
def metrics_process(settings: Settings) -> Iterator[str]:
    port = free_port()
    child = subprocess.Popen(
        [sys.executable, "-c", METRICS_PROCESS, str(port)],
        env={**settings.to_env(), "PATH": "/usr/bin:/bin"},
    )
    url = f"http://127.0.0.1:{port}/metrics"
    try:
        wait_until(lambda: _serves_counts(url), timeout=30, what="the metrics process")
        yield url
    finally:
        child.kill()
        child.wait(10)


def _serves_counts(url: str) -> bool:
    """Whether ``url`` answers with the counts (they are registered after it starts serving)."""
    try:
        return "# TYPE pmrunner_monitor_runs_total counter" in requests.get(url, timeout=2).text
    except requests.ConnectionError:
        return False


def test_every_process_counts_monitor_runs_from_the_store(
    app: Celery, settings: Settings, metrics_process: str
) -> None:
    services = Services.of(app)
    reason = InputError("GET /environments/e-1 answered 200 with a body that is not JSON")
    for number in range(2):
        report_failed_start(services, monitor("lost"), f"lost-{number}", reason, 1, None, "monitor")
    finished = utc_now()
    ran = Run(collection_id="coll-ran", collection_name="ran", finished_at=finished)
    ran.started_at = finished - timedelta(seconds=1)
    meta = monitor_meta(monitor("ran"), 1, None, services.registry.sealer)
    report = build_report(ran, run_id="ran-1", source="monitor", monitor=meta)
    services.store.save(report)
    services.store.save(report)  # stored again (a finalize retried): counted once
    services.store.save(build_report(ran, run_id="not-a-monitor", source="api"))
    expected = {("lost", "failed"): 2.0, ("ran", "finished"): 1.0}

    api_settings = dataclasses.replace(settings, api_key=AUTH["x-api-key"])
    with served(api_settings) as api:
        from_api = monitor_runs(requests.get(f"{api}/metrics", timeout=10).text)
    from_other = monitor_runs(requests.get(metrics_process, timeout=10).text)
    assert from_api == expected
    assert from_other == expected
