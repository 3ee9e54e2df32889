"""The monitor source's health states, decided from the poller's record."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from prometheus_client import CollectorRegistry, generate_latest

from scheduler.health import SourceHealth, SourceHealthCollector, health_of
from worker.settings import Settings

NOW = 1_000_000.0


def state(record: dict[str, str], now: float = NOW) -> SourceHealth:
    return health_of(record, now, poll_interval=30, max_staleness=3600)


def test_no_poll_yet_is_starting() -> None:
    assert state({}).state == "starting"


def test_a_good_recent_poll_is_healthy() -> None:
    health = state({"lastPoll": str(NOW - 5), "lastGoodPoll": str(NOW - 5), "monitors": "3"})
    assert (health.state, health.monitors, health.runs_monitors) == ("healthy", 3, True)


def test_a_failed_poll_after_a_good_one_is_degraded_with_the_age() -> None:
    health = state({"lastPoll": str(NOW), "lastGoodPoll": str(NOW - 90), "error": "500"})
    assert (health.state, health.reason, health.age) == ("degraded", "500", 90)
    assert health.runs_monitors


def test_polls_that_stopped_coming_are_degraded() -> None:
    health = state({"lastPoll": str(NOW - 200), "lastGoodPoll": str(NOW - 200)})
    assert health.state == "degraded" and "no poll for 200 s" in (health.reason or "")


def test_permanent_errors_and_no_good_poll_ever_are_unhealthy() -> None:
    refused = state(
        {"lastPoll": str(NOW), "lastGoodPoll": str(NOW - 60), "error": "401", "permanent": "1"}
    )
    assert (refused.state, refused.runs_monitors) == ("unhealthy", True)
    never = state({"lastPoll": str(NOW), "error": "401", "permanent": "1"})
    assert (never.state, never.runs_monitors) == ("unhealthy", False)


def test_data_older_than_the_maximum_staleness_is_not_run() -> None:
    health = state({"lastPoll": str(NOW), "lastGoodPoll": str(NOW - 4000), "error": "down"})
    assert health.state == "unhealthy" and health.stale and not health.runs_monitors


def test_the_metrics_say_what_the_state_says() -> None:
    registry = CollectorRegistry()
    registry.register(SourceHealthCollector(lambda: SourceHealth("degraded", "x", NOW, 42.0)))
    text = generate_latest(registry).decode()
    assert 'pmrunner_monitor_source_state{state="degraded"} 1.0' in text
    assert 'pmrunner_monitor_source_state{state="healthy"} 0.0' in text
    assert "pmrunner_monitor_source_healthy 0.0" in text
    assert "pmrunner_monitor_source_last_good_poll_age_seconds 42.0" in text


def test_a_local_monitors_file_reports_its_monitors_and_a_fresh_read() -> None:
    from tasks.observe import source_health

    examples = Path(__file__).resolve().parents[2] / "examples" / "monitors.yaml"
    settings = dataclasses.replace(Settings.from_env({}), monitors_file=examples)
    health = source_health(settings)
    assert health is not None
    detail = health.to_dict()
    assert detail["state"] == "healthy"
    assert detail["monitors"] == 3
    assert detail["lastGoodPollAgeSeconds"] == 0.0
