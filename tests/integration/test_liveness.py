"""A lost worker's steps, resolved one by one: sent again, retried once, or outcome unknown."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import replace

import pytest
from celery import Celery

from runtime.loading import VariableFile
from store.keys import text
from store.records import StepHolder
from tasks.context import Services
from tasks.dispatch import RunRequest, start_run
from tasks.finalize import wait_for_report
from tasks.liveness import UNACKED_HASH, UNACKED_INDEX, resolve_lost, resolve_orphans
from tests.echo_server import serve
from tests.integration.conftest import in_process_worker
from worker.settings import Settings

pytestmark = pytest.mark.integration
GHOST = "ghost@nowhere"


@pytest.fixture()
def base_url() -> Iterator[str]:
    with serve() as url:
        yield url


def one_request_run(
    app: Celery, base_url: str, method: str, resend_unsafe: bool | None = None
) -> str:
    item = {
        "name": f"{method} once",
        "request": {"method": method, "url": "{{baseUrl}}/get"},
        "event": [{"listen": "test", "script": {"exec": ['pm.test("ok", () => {});']}}],
    }
    collection = {"info": {"_postman_id": uuid.uuid4().hex, "name": "lost"}, "item": [item]}
    environment = VariableFile("env", "env-1", [{"key": "baseUrl", "value": base_url}])
    return start_run(app, RunRequest(collection, environment, resend_unsafe=resend_unsafe))


def held_by_ghost(
    services: Services, settings: Settings, run_id: str, sent: str | None
) -> StepHolder:
    """The ghost worker took the run's step (and sent its request, when ``sent``), then its
    heartbeat lapsed and the step was resolved. Returns the ghost's delivery."""
    args = [run_id, "b0", 0, {"index": 0}]
    queue = settings.queue_for(settings.default_network)
    holder = StepHolder(
        GHOST, "ghost-task", queue, {"args": args, "queue": queue, "task": "ghost-task"}
    )
    services.workers.heartbeat(GHOST, 0.05)
    start = services.registry.begin_step(run_id, "b0:0", "b0", holder, token="", with_ticket=False)
    assert start.outcome == "run"
    if sent:
        services.registry.mark_sent(run_id, "b0:0", sent, holder)
    time.sleep(0.1)
    assert GHOST in services.workers.lapsed()
    assert resolve_lost(services, GHOST) == 1
    assert GHOST not in services.workers.lapsed()
    return holder


@pytest.mark.parametrize(
    ("method", "sent", "note"),
    [
        ("POST", None, f"sent again: worker {GHOST} was lost before it sent this request"),
        ("GET", "GET", f"retried: worker {GHOST} was lost after sending this GET request"),
    ],
)
def test_a_step_not_sent_or_safe_runs_again_and_says_why(
    app: Celery, settings: Settings, base_url: str, method: str, sent: str | None, note: str
) -> None:
    services = Services.of(app)
    run_id = one_request_run(app, base_url, method)
    held_by_ghost(services, settings, run_id, sent)
    with in_process_worker(app, [settings.queue_for(settings.default_network)]):
        report = wait_for_report(services, run_id, 30)
    assert report is not None
    [execution] = report["run"]["executions"]
    assert execution["attempt"] == 2 and execution["errors"] == []
    assert [a["passed"] for a in execution["assertions"]] == [True]
    assert any(note in text for _, text in execution["console"]), execution["console"]
    assert execution["worker"] != GHOST


def test_a_sent_unsafe_request_is_not_sent_again(
    app: Celery, settings: Settings, base_url: str
) -> None:
    services = Services.of(app)
    run_id = one_request_run(app, base_url, "POST")
    held_by_ghost(services, settings, run_id, "POST")
    report = services.store.get(run_id)  # every branch has ended: reported at once
    assert report is not None
    [execution] = report["run"]["executions"]
    assert execution["errors"][0]["name"] == "OutcomeUnknown"
    assert execution["errors"][0]["message"] == (
        f"outcome unknown: worker {GHOST} was lost after sending it (POST); not sent again"
    )
    with in_process_worker(app, [settings.queue_for(settings.default_network)]):
        time.sleep(2)  # the original message, were it delivered, would be dropped
    assert services.store.get(run_id) == report


def test_a_message_taken_by_a_worker_that_died_before_noting_it_is_sent_again(
    app: Celery, settings: Settings, base_url: str
) -> None:
    services = Services.of(app)
    client = services.registry.redis
    queue = settings.queue_for(settings.default_network)
    run_id = one_request_run(app, base_url, "POST")
    # What kombu does when a worker takes a message: off the queue, into the
    # unacknowledged set, with the time it was taken (here: two lapses ago).
    message = json.loads(text(client.rpop(queue)))
    tag = f"orphan-{run_id}"
    client.hset(UNACKED_HASH, tag, json.dumps([message, "", queue]))
    client.zadd(UNACKED_INDEX, {tag: time.time() - 2 * settings.worker_lapse})
    try:
        assert resolve_orphans(services) == 1
        assert resolve_orphans(services) == 0  # resolved once
        assert not client.hexists(UNACKED_HASH, tag)
        with in_process_worker(app, [queue]):
            report = wait_for_report(services, run_id, 30)
    finally:
        client.hdel(UNACKED_HASH, tag)
        client.zrem(UNACKED_INDEX, tag)
    assert report is not None
    [execution] = report["run"]["executions"]
    assert execution["errors"] == [] and execution["attempt"] == 1
    note = "sent again: the worker that took this request was lost before it started it"
    assert any(note in text for _, text in execution["console"])


@pytest.mark.parametrize(("runner", "run"), [(False, True), (True, False)])
def test_a_run_chooses_whether_a_sent_unsafe_request_is_sent_again(
    app: Celery, settings: Settings, base_url: str, runner: bool, run: bool
) -> None:
    """A monitor's ``resendUnsafe`` (or ``--resend-unsafe``) wins over the runner's default."""
    services = Services.of(app)
    judge = replace(services, settings=replace(settings, resend_unsafe=runner))
    run_id = one_request_run(app, base_url, "POST", resend_unsafe=run)
    held_by_ghost(judge, settings, run_id, "POST")
    progress = services.registry.progress(run_id)
    queued = services.registry.redis.lrange(settings.queue_for(settings.default_network), 0, -1)
    resent = [m for m in queued if b"(sent again)" in m and run_id.encode() in m]
    report = services.store.get(run_id)
    if run:
        note = f"retried: worker {GHOST} was lost after sending this POST request"
        assert str(progress["b0:0:note"]).startswith(note)
        assert str(progress["b0:0:owner"]).startswith("token:") and len(resent) == 1
        assert report is None  # the retry runs it
    else:
        assert "b0:0:note" not in progress and resent == []
        assert report is not None  # its only branch ended: reported at once
        [execution] = report["run"]["executions"]
        assert execution["errors"][0]["name"] == "OutcomeUnknown"


@pytest.mark.parametrize("sent", [None, "POST"])
def test_a_worker_taken_for_lost_that_comes_back_changes_nothing(
    app: Celery, settings: Settings, base_url: str, sent: str | None
) -> None:
    """A worker cut off from Redis past the lapse, but alive, is taken for lost and its step
    resolved; when it reaches Redis again, its delivery may neither send the request nor
    record a result nor end the branch: every step write is compare-and-set on the
    delivery that holds the step."""
    services = Services.of(app)
    registry = services.registry
    run_id = one_request_run(app, base_url, "POST")
    ghost = held_by_ghost(services, settings, run_id, sent)
    resolved = services.store.get(run_id)  # outcome unknown (sent) or None (sent again)
    # The ghost was only cut off: it carries on with the step.
    assert registry.mark_sent(run_id, "b0:0", "POST", ghost) is False  # must not go out
    late: dict[str, object] = {"executions": [], "next": None}
    assert registry.finish_branch(run_id, "b0:0", "b0", late, {}, ghost) is None
    assert registry.finish_step(run_id, "b0:0", "b0", late, {}, None, ghost) == (False, False)
    assert registry.progress(run_id).get("b0:0:sent") == sent
    assert registry.results(run_id).get("b0:0") != late
    assert not registry.redis.hexists(registry.keys.worker_steps(GHOST), f"{run_id}|b0:0")
    if sent:
        assert resolved is not None and services.store.get(run_id) == resolved
        return
    # Sent again: the late delivery neither recorded the step nor ended its branch, so the
    # delivery with the token runs it and the run waits for that.
    assert resolved is None and registry.branches_done(run_id) == 0
    assert "b0:0" not in registry.results(run_id)
    assert str(registry.progress(run_id)["b0:0:owner"]).startswith("token:")
