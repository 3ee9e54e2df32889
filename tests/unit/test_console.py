"""The runner's terminal lines: run summaries, monitors with their next slot, Redis addresses."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import pytest

from pmrunner.cli.console import RunPrinter, monitor_lines, redis_address, run_line
from runtime.results import Assertion, Execution, Run
from scheduler.monitors import Monitor
from scheduler.schedule import Schedule


def report(assertions: list[bool], status: str) -> dict[str, object]:
    run = Run(collection_id="c", collection_name="Shop", iterations=1, started_at=datetime.now(UTC))
    execution = Execution(id=1, item_id="i", item_name="Health", iteration=0)
    execution.assertions = [Assertion(name=f"a{n}", passed=ok) for n, ok in enumerate(assertions)]
    run.executions = [execution]
    return {
        "id": "r1",
        "status": status,
        "duration": 42,
        "run": run.to_dict(),
        "monitor": {"name": "Shop health", "uid": "shop-health"},
    }


def test_run_line_names_monitor_status_assertions_and_duration() -> None:
    line = run_line(report([True, True, False], "failed"))
    assert line.endswith("Shop health: failed, assertions 2 passed / 1 failed, 1 requests, 42 ms")


def test_monitor_lines_give_the_next_slot() -> None:
    monitor = Monitor(
        uid="m",
        name="Every ten",
        schedule=Schedule.every(10),
        source="local",
        collection="c.json",
        environment=None,
    )
    now = datetime(2026, 1, 1, 12, 0, 3, tzinfo=UTC)
    assert monitor_lines([monitor], now) == [
        "1 monitor loaded:",
        "  Every ten (m): every 10s, next 12:00:10 UTC",
    ]


def test_redis_address_hides_the_password() -> None:
    assert redis_address("redis://:s3cret@redis:6379/0") == "redis://:***@redis:6379/0"
    assert redis_address("redis://127.0.0.1:6379/0") == "redis://127.0.0.1:6379/0"


def test_printer_prints_each_finalized_run_and_passes_warnings_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    printed: list[str] = []
    reports = {"r1": report([True], "finished"), "r2": report([False], "failed")}
    printer = RunPrinter(reports.get, printed.append)
    printer.connect()
    finalizer = logging.getLogger("tasks.finalize")
    try:
        with caplog.at_level(logging.WARNING):
            finalizer.info("run %s finalized: %s (%d executions)", "r1", "finished", 1)
            finalizer.info("run %s finalized: %s (%d executions)", "r2", "failed", 1)
            finalizer.info("run %s: %d waiting messages removed", "r2", 3)
            finalizer.warning("a warning")
    finally:
        finalizer.removeHandler(printer)
        finalizer.propagate = True
    assert [line.split(" ", 1)[1] for line in printed] == [
        "Shop health: finished, assertions 1 passed / 0 failed, 1 requests, 42 ms",
        "Shop health: failed, assertions 0 passed / 1 failed, 1 requests, 42 ms",
    ]
    assert [record.getMessage() for record in caplog.records] == ["a warning"]
