"""The pure parts of the metrics and of the distributed run's progress lines."""

from __future__ import annotations

import json

import pytest

from pmrunner.cli.progress import describe_execution, no_worker_line
from store.run_metrics import LatencyHistogram, bucket_label, increments
from worker.queues import SENT_AT_HEADER, _oldest_age, _sent_at


def execution(ms: float, network: str, *passed: bool) -> dict[str, object]:
    return {
        "item_name": "get",
        "network": network,
        "worker": "w@h",
        "request": {"method": "GET"},
        "response": {"code": 200, "status": "OK", "response_time_ms": ms},
        "assertions": [{"name": str(n), "passed": p} for n, p in enumerate(passed)],
    }


def test_a_stored_run_adds_its_latencies_by_network_and_its_failed_assertions() -> None:
    report = {
        "monitor": {"uid": "m-1"},
        "run": {
            "executions": [
                execution(40, "a", True, False),
                execution(300, "a", False),
                execution(7000, "b", True),
                {"item_name": "lost", "errors": [{"message": "no worker"}], "assertions": []},
            ]
        },
    }
    added = dict(increments(report))
    assert added.pop(json.dumps(["latency_sum", "m-1", "a"])) == pytest.approx(0.34)
    assert added == {
        json.dumps(["latency", "m-1", "a", "0.05"]): 1,
        json.dumps(["latency", "m-1", "a", "0.5"]): 1,
        json.dumps(["latency", "m-1", "b", "10.0"]): 1,
        json.dumps(["latency_sum", "m-1", "b"]): 7.0,
        json.dumps(["assertions_failed", "m-1"]): 2,
    }


def test_a_run_of_no_monitor_counts_under_an_empty_monitor() -> None:
    added = dict(increments({"run": {"executions": [execution(10, "", False)]}}))
    assert added[json.dumps(["assertions_failed", ""])] == 1
    assert added[json.dumps(["latency", "", "", "0.025"])] == 1


def test_histogram_buckets_are_cumulative_up_to_inf() -> None:
    histogram = LatencyHistogram()
    histogram.buckets[0] = 2
    histogram.buckets[3] = 1
    pairs = histogram.cumulative()
    assert pairs[0] == ("0.025", 2.0)
    assert pairs[3] == ("0.25", 3.0)
    assert pairs[-1] == ("+Inf", 3.0)
    assert bucket_label(float("inf")) == "+Inf"


def test_oldest_age_comes_from_the_tail_message_stamp() -> None:
    message = json.dumps({"body": "", "headers": {SENT_AT_HEADER: 100.0}, "properties": {}})
    assert _sent_at(message) == 100.0
    assert _sent_at(json.dumps({"headers": {}})) is None
    assert _sent_at(b"not json") is None
    assert _oldest_age(0, [], 130.0) == 0.0
    assert _oldest_age(2, [100.0], 130.0) == 30.0
    assert _oldest_age(2, [100.0, None], 130.0) is None  # one list's tail has no stamp


def test_progress_line_names_the_request_its_outcome_and_where_it_ran() -> None:
    line = describe_execution(execution(12.4, "a", True, False))
    assert line == "get: GET 200 OK, 12 ms, 1 assertion failed (a on w@h)"
    failed = {"item_name": "x", "request": {"method": "POST"}, "errors": [{"message": "refused"}]}
    assert describe_execution(failed) == "x: POST refused"
    assert "-Q net.a" in no_worker_line("net.a", alive=0)
    assert "none of the 2 live workers" in no_worker_line("net.a", alive=2)
