"""Step bookkeeping against a real Redis: one delivery runs a step, late steps write nothing."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator

import pytest
import redis

from store import Keys, RunRegistry, RunTicket
from store.records import StepHolder

pytestmark = pytest.mark.integration


@pytest.fixture()
def registry(redis_url: str) -> Iterator[RunRegistry]:
    keys = Keys(f"pmrtest:{uuid.uuid4().hex[:8]}:")
    connection = redis.Redis.from_url(redis_url)
    yield RunRegistry(connection, keys)
    for key in connection.scan_iter(f"{keys.prefix}*"):
        connection.delete(key)


def registered(registry: RunRegistry, run_id: str = "r1") -> RunTicket:
    ticket = RunTicket(run_id, "d", "c", "n", {"branches": []}, {}, 1, time.time() + 60, "")
    registry.register(ticket, {"environment": [{"key": "s", "value": "secret", "type": "secret"}]})
    return ticket


def holder(worker: str, task: str) -> StepHolder:
    return StepHolder(worker, task, "net.a", {"args": ["r1", "b0", 0, {}], "task": task})


def test_one_delivery_runs_a_step_and_a_duplicate_is_dropped(registry: RunRegistry) -> None:
    registered(registry)
    first = registry.begin_step("r1", "b0:0", "b0", holder("w1", "t1"), token="", with_ticket=True)
    assert first.outcome == "run" and first.attempt == 1 and first.ticket is not None
    retried = registry.begin_step(
        "r1", "b0:0", "b0", holder("w1", "t1"), token="", with_ticket=False
    )
    assert retried.outcome == "run" and retried.attempt == 1  # a retried claim is still ours
    twin = registry.begin_step("r1", "b0:0", "b0", holder("w2", "t2"), token="", with_ticket=False)
    assert twin.outcome == "busy" and twin.started["worker"] == "w1"
    assert not registry.send_again("r1", "b0:0", "tok", "sent again", owner="t9")  # not t9's
    assert registry.send_again("r1", "b0:0", "tok", "sent again: worker w1 was lost", owner="t1")
    stale = registry.begin_step("r1", "b0:0", "b0", holder("w2", "t2"), token="", with_ticket=False)
    assert stale.outcome == "busy"
    again = registry.begin_step(
        "r1", "b0:0", "b0", holder("w3", "t3"), token="tok", with_ticket=False
    )
    assert again.outcome == "run" and again.attempt == 2 and "was lost" in again.note


def test_finishing_is_idempotent_per_delivery(registry: RunRegistry) -> None:
    registered(registry)
    mine = holder("w1", "t1")
    registry.begin_step("r1", "b0:0", "b0", mine, token="", with_ticket=False)
    handoff = ("b0:1", "net.b", ["r1", "b0", 1, {"index": 1}])
    result = {"executions": [], "next": {"index": 1}}
    assert registry.finish_step("r1", "b0:0", "b0", result, {}, handoff, mine) == (True, True)
    # The same call again (its reply was lost in a Redis outage) answers the same.
    assert registry.finish_step("r1", "b0:0", "b0", result, {}, handoff, mine) == (True, True)
    other = holder("w2", "t2")
    assert registry.finish_step("r1", "b0:0", "b0", result, {}, handoff, other) == (False, False)
    held = registry.redis.hget(registry.keys.worker_steps("w1"), "r1|b0:0")
    assert held is not None and b'"phase": "handing"' in held
    finished = registry.begin_step("r1", "b0:0", "b0", other, token="", with_ticket=False)
    assert finished.outcome == "finished" and finished.result == result


def test_finishing_a_branch_counts_it_once_with_an_expiry(registry: RunRegistry) -> None:
    registered(registry)
    for branch, task in (("b0", "t1"), ("b1", "t2")):
        step = holder("w1", task)
        registry.begin_step("r1", f"{branch}:0", branch, step, token="", with_ticket=False)
        ended = registry.finish_branch("r1", f"{branch}:0", branch, {"next": None}, {}, step)
        assert ended == (1 if branch == "b0" else 2)
    # The same delivery again (a lost reply) counts nothing twice; a twin records nothing.
    again = registry.finish_branch("r1", "b1:0", "b1", {"next": None}, {}, holder("w1", "t2"))
    assert again == 2
    assert registry.finish_branch("r1", "b1:0", "b1", {}, {}, holder("w2", "t9")) is None
    assert registry.branches_done("r1") == 2
    assert registry.redis.ttl(registry.keys.run_done("r1")) > 0
    registry.claim_final("r1")
    late = holder("w3", "t3")
    assert registry.finish_branch("r1", "b2:0", "b2", {}, {}, late) is None
    assert registry.branches_done("r1") == 2


def test_a_late_step_writes_nothing_after_the_run_ended(registry: RunRegistry) -> None:
    registered(registry)
    registry.claim_final("r1")
    registry.close("r1")
    assert not registry.redis.exists(registry.keys.run_states("r1"))
    late = holder("w1", "t1")
    assert registry.begin_step("r1", "b0:1", "b0", late, token="", with_ticket=False).outcome == (
        "final"
    )
    assert registry.finish_step("r1", "b0:1", "b0", {}, {"s": 1}, None, late) == (False, False)
    registry.mark_sent("r1", "b0:1", "POST", late)
    assert registry.record_step("r1", "b0:1", {"executions": []}) is False
    assert not registry.redis.exists(registry.keys.run_states("r1"))
    for key in registry.redis.scan_iter(f"{registry.keys.prefix}*"):
        assert registry.redis.ttl(key) != -1, f"{key!r} has no expiry"


def test_closing_a_run_removes_its_waiting_messages(registry: RunRegistry) -> None:
    queue = f"{registry.keys.prefix}net.nobody"
    registry.redis.rpush(queue, '{"headers": {"argsrepr": "run=r1 step=b0:0"}}', "other-run")
    registered(registry)
    assert registry.close("r1", [queue]) == 1
    assert registry.redis.lrange(queue, 0, -1) == [b"other-run"]


def test_a_first_claim_notes_a_request_sent_first_and_a_resend_does_not(
    registry: RunRegistry,
) -> None:
    """A step whose request goes out before anything else runs has it noted as sent by its
    claim, on a first attempt only: a step sent again notes its request when it goes out,
    so a second loss before that is told as such."""
    registered(registry)
    steps = registry.keys.worker_steps("w1")
    first = registry.begin_step(
        "r1", "b0:0", "b0", holder("w1", "t1"), token="", with_ticket=False, sent="POST"
    )
    assert first.outcome == "run" and first.attempt == 1
    assert registry.progress("r1")["b0:0:sent"] == "POST"
    entry = json.loads(registry.redis.hget(steps, "r1|b0:0") or "{}")
    assert entry["phase"] == "sent" and entry["method"] == "POST"
    twin = registry.begin_step(
        "r1", "b0:0", "b0", holder("w2", "t2"), token="", with_ticket=False, sent="GET"
    )
    assert twin.outcome == "busy" and registry.progress("r1")["b0:0:sent"] == "POST"
    registry.begin_step("r1", "b0:1", "b0", holder("w1", "t3"), token="", with_ticket=False)
    assert registry.send_again("r1", "b0:1", "tok", "sent again", owner="t3")
    again = registry.begin_step(
        "r1", "b0:1", "b0", holder("w1", "t4"), token="tok", with_ticket=False, sent="POST"
    )
    assert again.outcome == "run" and again.attempt == 2
    assert "b0:1:sent" not in registry.progress("r1")
    assert json.loads(registry.redis.hget(steps, "r1|b0:1") or "{}")["phase"] == "started"
