"""Deployments at default settings: subnet workers and a scheduler, nothing on the default
network; and a scheduler with no worker at all. About a minute.
"""

from __future__ import annotations

import itertools
import json
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import redis
import yaml

from runtime.loading import VariableFile
from runtime.options import RunOptions, Timeouts
from tasks.context import Services
from tasks.dispatch import RunRequest, start_run
from tasks.outbox import deliveries
from tests.fault_rig import RecordingTarget, run_keys_without_expiry
from tests.integration.conftest import WorkerProcess, wait_until
from tests.integration.fault_helpers import BeatProcess, default_settings, drop_prefix, wait_stored
from worker.app import create_app

pytestmark = pytest.mark.integration
REPORT_AFTER_LAST_REQUEST_SECONDS = 2.0
MONITOR_LAG_SECONDS = 2.0  # the scheduler ticks every second


@pytest.fixture()
def targets() -> Iterator[tuple[RecordingTarget, RecordingTarget]]:
    """One target reachable as network a (127.0.0.2), one as network b (127.0.0.3)."""
    pair = (RecordingTarget("127.0.0.2").start(), RecordingTarget("127.0.0.3").start())
    yield pair
    for target in pair:
        target.stop()


def two_network_collection(tag: str, *, scripts: bool = True) -> dict:
    """A request to each network; ``scripts=False`` leaves out the test scripts, so the
    time from the last request to the report is pmrunner's alone, not a script context's boot.
    """
    test = [{"listen": "test", "script": {"exec": ['pm.test("ok", () => {});']}}]
    items = [
        {
            "name": f"on {net}",
            "request": {"method": "GET", "url": f"{{{{{net}Url}}}}/r/{tag}/{net}?ms=50"},
            "event": test if scripts else [],
        }
        for net in ("a", "b")
    ]
    return {"info": {"name": "subnets", "_postman_id": f"subnets-{tag}"}, "item": items}


def test_subnet_workers_and_a_scheduler_report_promptly_and_start_monitors_on_time(
    redis_url: str, tmp_path: Path, targets: tuple[RecordingTarget, RecordingTarget]
) -> None:
    tag = uuid.uuid4().hex[:8]
    net_a, net_b = f"a{tag}", f"b{tag}"
    networks = tmp_path / "networks.yaml"
    networks.write_text(
        yaml.safe_dump({"networks": {net_a: ["127.0.0.2/32"], net_b: ["127.0.0.3/32"]}})
    )
    (tmp_path / "subnets.json").write_text(json.dumps(two_network_collection(tag)))
    environment = {
        "values": [
            {"key": "aUrl", "value": targets[0].base_url},
            {"key": "bUrl", "value": targets[1].base_url},
        ]
    }
    (tmp_path / "env.json").write_text(json.dumps(environment))
    monitors = tmp_path / "monitors.yaml"
    monitor = {
        "name": "subnets",
        "uid": f"subnets-{tag}",
        "collection": "subnets.json",
        "environment": "env.json",
        "schedule": {"every": 10},
    }
    monitors.write_text(yaml.safe_dump({"monitors": [monitor]}))
    settings = default_settings(redis_url, tmp_path, networks_file=networks, monitors_file=monitors)
    app = create_app(settings)
    services = Services.of(app)
    workers = [
        WorkerProcess(settings, [settings.queue_for(net_a)], "subnet-a", concurrency=4),
        WorkerProcess(settings, [settings.queue_for(net_b)], "subnet-b", concurrency=4),
    ]
    beat = BeatProcess(settings)
    try:
        for worker in workers:
            worker.wait_ready(app, timeout=60)
        run_id = start_run(
            app,
            RunRequest(
                two_network_collection(f"direct{tag}", scripts=False),
                VariableFile("e", None, environment["values"]),
            ),
        )
        stored_at = wait_stored(services, run_id, 30)
        assert stored_at is not None, "a run on subnet workers alone was not reported"
        last_request = max(target.last_seen(f"direct{tag}") for target in targets)
        assert stored_at - last_request <= REPORT_AFTER_LAST_REQUEST_SECONDS
        wait_until(
            lambda: len(services.store.list(f"subnets-{tag}").runs) >= 3, 45, "three monitor runs"
        )
        runs = services.store.list(f"subnets-{tag}", limit=100).runs
        slots = sorted(
            datetime.strptime(r["monitor"]["slot"], "%Y%m%dT%H%M%SZ")
            .replace(tzinfo=UTC)
            .timestamp()
            for r in runs
        )
        assert all(b - a == 10 for a, b in itertools.pairwise(slots)), f"slots missed: {slots}"
        for run in runs:
            assert run["status"] == "finished", run["run"]["executions"]
            assert {e["network"] for e in run["run"]["executions"]} == {net_a, net_b}
            slot = datetime.strptime(run["monitor"]["slot"], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
            lag = datetime.fromisoformat(run["startedAt"].replace("Z", "+00:00")) - slot
            assert lag.total_seconds() <= MONITOR_LAG_SECONDS, f"started {lag} late"
        assert run_keys_without_expiry(redis.Redis.from_url(redis_url), settings.key_prefix) == []
    finally:
        beat.stop()
        for worker in workers:
            worker.stop()
        drop_prefix(redis.Redis.from_url(redis_url), settings.key_prefix)


def test_with_no_worker_alive_the_scheduler_reports_at_the_deadline(
    redis_url: str, tmp_path: Path
) -> None:
    hooks = RecordingTarget().start()
    settings = default_settings(redis_url, tmp_path)
    app = create_app(settings)
    services = Services.of(app)
    beat = BeatProcess(settings)
    try:
        time.sleep(3)  # the scheduler's upkeep thread takes the lease
        collection = {
            "info": {"name": "stranded", "_postman_id": uuid.uuid4().hex},
            "item": [
                {"name": "stranded", "request": {"method": "GET", "url": "http://127.0.0.1:9/x"}}
            ],
        }
        options = RunOptions(timeouts=Timeouts(run=5000))  # newman's --timeout: deadline 35 s
        run_id = start_run(
            app, RunRequest(collection, options=options, webhooks=[f"{hooks.base_url}/r/hook/run"])
        )
        ticket = services.registry.ticket(run_id)
        assert ticket is not None
        stored_at = wait_stored(services, run_id, 60)
        assert stored_at is not None, f"not reported; scheduler log:\n{beat.log()}"
        assert ticket.deadline <= stored_at <= ticket.deadline + 3
        report = services.store.get(run_id)
        assert report is not None
        message = report["run"]["executions"][0]["errors"][0]["message"]
        assert "no worker consumed net." in message
        wait_until(lambda: deliveries(services, run_id), 15, "the webhook delivery")
        assert deliveries(services, run_id)[0]["status"] == 200
        assert hooks.received("hook") == {("POST", "run"): 1}
        assert run_keys_without_expiry(redis.Redis.from_url(redis_url), settings.key_prefix) == []
    finally:
        beat.stop()
        hooks.stop()
        drop_prefix(redis.Redis.from_url(redis_url), settings.key_prefix)
