"""``pmrunner runs list|show`` and ``pmrunner monitors list`` read the run store the API reads.

Runs of two monitors that share a collection go through a real worker; the
commands run as a user runs them (subprocesses with ``PMRUNNER_*``
variables) against the same Redis.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis
from celery import Celery

from runtime.reporters.run_shapes import build_report
from runtime.results import Run, utc_now
from store import Keys, RunStore
from tasks.context import Services
from tasks.finalize import wait_for_report
from tasks.monitors import refuse_start, source_for, start_monitor_run
from tasks.schedule import build_scheduler
from tests.integration.api_helpers import worker_for
from tests.integration.conftest import ROOT
from tests.integration.scheduler_helpers import base_url as base_url
from tests.integration.test_monitor_listing import COLLECTION_ID, monitors_file
from worker.app import create_app
from worker.embedded import EmbeddedRedis
from worker.settings import Settings

pytestmark = pytest.mark.integration


def pmrunner(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("PMRUNNER_")}
    return subprocess.run(
        [sys.executable, "-m", "pmrunner.cli", *args],
        cwd=ROOT,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def rows(output: str) -> list[list[str]]:
    """The table's rows (header first), split on runs of two spaces."""
    return [re.split(r" {2,}", line.strip()) for line in output.splitlines()]


@pytest.fixture()
def monitor_runs(
    app: Celery,  # its fixture cleans the test's keys up
    settings: Settings,
    tmp_path: Path,
    base_url: str,
) -> tuple[Settings, dict[str, str]]:
    """A run of each shared-collection monitor, then one that could not start (newest)."""
    settings = dataclasses.replace(settings, monitors_file=monitors_file(tmp_path, base_url))
    runner = create_app(settings)
    services = Services.of(runner)
    source = source_for(settings)
    assert source is not None
    monitors = {monitor.uid: monitor for monitor in source.monitors()}
    scheduler = build_scheduler(runner)
    assert scheduler is not None and scheduler.poller.poll_once()
    ids: dict[str, str] = {}
    with worker_for(runner, settings):
        for uid in ("orders-berlin", "orders-dublin"):
            ids[uid] = start_monitor_run(runner, services, source, monitors[uid])
            assert wait_for_report(services, ids[uid], 60) is not None
            time.sleep(0.01)  # distinct start times
    reason = RuntimeError("the environment is gone")
    ids["failed-start"] = refuse_start(
        services, monitors["orders-berlin"], "cannot-start-1", reason, None
    )
    return settings, ids


def test_runs_list_shows_each_runs_monitor_newest_first_and_filters(
    monitor_runs: tuple[Settings, dict[str, str]],
) -> None:
    settings, ids = monitor_runs
    env = settings.to_env()
    listed = pmrunner(env, "runs", "list")
    assert listed.returncode == 0, listed.stderr
    header, *table = rows(listed.stdout)
    assert header == [
        "RUN ID",
        "MONITOR",
        "COLLECTION",
        "STATUS",
        "STARTED",
        "DURATION",
        "PASSED/FAILED",
    ]
    assert [row[0] for row in table] == [
        ids["failed-start"],
        ids["orders-dublin"],
        ids["orders-berlin"],
    ]
    by_id = {row[0]: row for row in table}
    assert by_id[ids["orders-berlin"]][1:4] == ["Orders from Berlin", "API smoke", "failed"]
    assert by_id[ids["orders-dublin"]][1:4] == ["Orders from Dublin", "API smoke", "failed"]
    assert by_id[ids["orders-dublin"]][6] == "1/1"  # one assertion passed, one failed
    assert by_id[ids["failed-start"]][6] == "0/0"

    def run_ids(*filters: str) -> list[str]:
        answer = pmrunner(env, "runs", "list", *filters)
        assert answer.returncode == 0, answer.stderr
        return [row[0] for row in rows(answer.stdout)[1:]]

    assert run_ids("--monitor", "orders-dublin") == [ids["orders-dublin"]]
    assert run_ids("--monitor", "Orders from Berlin") == [ids["failed-start"], ids["orders-berlin"]]
    assert run_ids("--collection", COLLECTION_ID, "--limit", "2") == [
        ids["failed-start"],
        ids["orders-dublin"],
    ]
    assert run_ids("--collection", f"12345678-{COLLECTION_ID}", "--monitor", "orders-dublin") == [
        ids["orders-dublin"]
    ]
    nothing = pmrunner(env, "runs", "list", "--status", "finished")
    assert (nothing.returncode, nothing.stdout.strip()) == (0, "no stored runs match")


def test_runs_show_prints_summary_and_failures_or_the_stored_report(
    monitor_runs: tuple[Settings, dict[str, str]],
) -> None:
    settings, ids = monitor_runs
    env = settings.to_env()
    run_id = ids["orders-dublin"]
    shown = pmrunner(env, "runs", "show", run_id[:10])  # the start of an id will do
    assert shown.returncode == 0, shown.stderr
    text = shown.stdout
    assert f"run         {run_id}" in text
    assert "monitor     Orders from Dublin (orders-dublin)" in text
    assert f"collection  API smoke ({COLLECTION_ID})" in text
    assert "requests    2, 0 failed" in text
    assert "assertions  2, 1 failed" in text
    assert "1. Sample POST Request > Status code is 400" in text
    assert "AssertionError: expected response to have status code 400 but got 200" in text
    as_json = pmrunner(env, "runs", "show", run_id, "--json")
    store = RunStore(redis.Redis.from_url(settings.redis_url), Keys(settings.key_prefix))
    assert json.loads(as_json.stdout) == store.get(run_id)
    failed_start = pmrunner(env, "runs", "show", ids["failed-start"]).stdout
    assert "error       could not start: the environment is gone" in failed_start


def test_unknown_runs_and_unreachable_redis_are_one_error_line(settings: Settings) -> None:
    env = settings.to_env()
    unknown = pmrunner(env, "runs", "show", "no-such-run")
    assert unknown.returncode == 1
    assert unknown.stderr.strip().splitlines() == [
        f"error: run 'no-such-run' is not stored in {settings.redis_url}"
        " (another Redis or key prefix, or retention dropped it)"
    ]
    away = {**env, "PMRUNNER_REDIS_URL": "redis://:hunter2-password@127.0.0.1:9/0"}
    for command in (("runs", "list"), ("runs", "show", "x"), ("monitors", "list")):
        started = time.monotonic()
        answer = pmrunner(away, *command)
        assert time.monotonic() - started < 20
        assert answer.returncode == 1, command
        (line,) = answer.stderr.strip().splitlines()
        assert line.startswith(
            "error: cannot read the run store: Redis at redis://:***@127.0.0.1:9/0"
        )
        assert "hunter2" not in answer.stderr + answer.stdout


def test_monitors_list_shows_schedule_next_slot_and_last_run(
    monitor_runs: tuple[Settings, dict[str, str]],
) -> None:
    settings, _ = monitor_runs
    from_file = settings.to_env()
    # Without the monitors file: the catalog the scheduler stored (its webhook URLs sealed).
    from_catalog = {k: v for k, v in from_file.items() if k != "PMRUNNER_MONITORS_FILE"}
    assert (
        pmrunner(from_catalog, "monitors", "list").stdout
        == pmrunner(from_file, "monitors", "list").stdout
    )
    listed = pmrunner(from_catalog, "monitors", "list")
    assert listed.returncode == 0, listed.stderr
    header, *table = rows(listed.stdout)
    assert header == ["NAME", "UID", "SCHEDULE", "NEXT SLOT", "LAST RUN"]
    by_uid = {row[1]: row for row in table}
    assert [row[0] for row in table] == ["Orders from Berlin", "Orders from Dublin", "Paused"]
    assert by_uid["orders-dublin"][2] == "cron '30 4 * * *' (Europe/Dublin)"
    assert by_uid["orders-berlin"][2] == "every 3600s"
    hourly, ahead = by_uid["orders-berlin"][3].split(" (")
    assert hourly.endswith(":00:00Z") and ahead.startswith("in ")
    assert by_uid["paused"][3:] == ["paused", "-"]
    assert by_uid["orders-berlin"][4].startswith("failed ")  # the run that could not start
    assert by_uid["orders-dublin"][4].startswith("failed ")


def test_the_commands_find_the_embedded_redis_of_a_running_pmrunner_up(tmp_path: Path) -> None:
    with EmbeddedRedis(tmp_path) as embedded:
        store = RunStore(redis.Redis.from_url(embedded.url))
        run = Run(collection_id="coll-here", collection_name="Here", finished_at=utc_now())
        store.save(build_report(run, run_id="run-in-embedded-redis", source="newman"))
        listed = pmrunner({"PMRUNNER_DATA_DIR": str(tmp_path)}, "runs", "list")
    assert listed.returncode == 0, listed.stderr
    assert rows(listed.stdout)[1][:3] == ["run-in-embedded-redis", "-", "Here"]


def test_the_commands_read_the_history_of_a_stopped_pmrunner_up(tmp_path: Path) -> None:
    with EmbeddedRedis(tmp_path) as embedded:
        store = RunStore(redis.Redis.from_url(embedded.url))
        run = Run(collection_id="coll-kept", collection_name="Kept", finished_at=utc_now())
        store.save(build_report(run, run_id="run-kept-after-stop", source="newman"))
    listed = pmrunner({"PMRUNNER_DATA_DIR": str(tmp_path)}, "runs", "list")
    shown = pmrunner({"PMRUNNER_DATA_DIR": str(tmp_path)}, "runs", "show", "run-kept")
    assert listed.returncode == 0, listed.stderr
    assert rows(listed.stdout)[1][:3] == ["run-kept-after-stop", "-", "Kept"]
    assert shown.returncode == 0, shown.stderr
    assert "run-kept-after-stop" in shown.stdout
    # the command's server stopped with it: nothing is left running on the data directory
    assert EmbeddedRedis(tmp_path)._registry_file.exists() is False
