"""A failure notice is a warning only when a webhook is there to receive it."""

from __future__ import annotations

import logging
from typing import Any, cast

import pytest

from scheduler.monitors import Monitor
from scheduler.schedule import Schedule
from tasks.monitors import _send_notice

REPORT = {"id": "run-1", "status": "failed", "finishedAt": "2026-12-03T18:00:00.000Z"}


def test_a_notice_with_no_webhook_is_logged_below_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    monitor = Monitor(
        uid="payments",
        name="Payments",
        schedule=Schedule.every(5),
        source="local",
        collection="c.json",
        environment=None,
    )
    services = cast(Any, None)  # no webhook: nothing is enqueued
    with caplog.at_level(logging.DEBUG, logger="tasks.monitors"):
        _send_notice(services, monitor, REPORT, "monitor.failing", 1)
    records = [r for r in caplog.records if "monitor.failing" in r.getMessage()]
    assert [r.levelno for r in records] == [logging.INFO]
