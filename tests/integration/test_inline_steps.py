"""A sequence's next step on the same queue runs in the same task (``tasks.inline``).

Inlined steps report exactly as steps sent through the broker do, and a worker
killed while running one has it resolved like any other: sent again (a safe
request, flagged as a retry) or reported as outcome unknown (an unsafe one),
and the run reports once.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import yaml
from celery import Celery

from runtime.loading import VariableFile
from store.records import StepHolder
from tasks import inline
from tasks.context import Services
from tasks.dispatch import RunRequest, start_run
from tasks.finalize import wait_for_report
from tasks.liveness import resolve_lost
from tests.echo_server import serve
from tests.fault_rig import RecordingTarget
from tests.integration.conftest import WorkerProcess, in_process_worker, wait_until
from tests.integration.fault_helpers import wait_stored
from worker.app import create_app
from worker.settings import Settings

pytestmark = pytest.mark.integration
JSON = dict[str, Any]
STEPS = 6
EXPECT = "pm.expect"
GHOST = "ghost@nowhere"


@pytest.fixture()
def base_url() -> Iterator[str]:
    with serve() as url:
        yield url


def prev_check(n: int) -> str:
    """A test that step ``n`` was sent with the variable step ``n - 1`` set."""
    return f'pm.test("prev", () => {EXPECT}(pm.response.json().args.prev).to.equal("{n - 1}"));'


def chained_sequence() -> JSON:
    """Each step checks the variable the step before set; a cookie travels from step 2 on."""
    items = []
    for n in range(STEPS):
        url = "{{baseUrl}}/get?step=" + str(n) + "&prev={{v}}"
        if n == 2:
            url = "{{baseUrl}}/cookies/set?c=two"
        checks = [f'pm.environment.set("v", "{n}");']
        if 0 < n != 2:
            checks.append(prev_check(n))
        if n > 2:
            checks.append(
                f'pm.test("cookie", () => {EXPECT}(pm.cookies.get("c")).to.equal("two"));'
            )
        items.append(
            {
                "name": f"s{n}",
                "request": {"method": "GET", "url": url},
                "event": [{"listen": "test", "script": {"exec": checks}}],
            }
        )
    return {"info": {"_postman_id": uuid.uuid4().hex, "name": "inline"}, "item": items}


def comparable(report: JSON) -> list[JSON]:
    """What a report says of each step, less what differs from run to run (times, ids)."""
    keep = ("item_name", "iteration", "attempt", "errors", "console", "network")
    return [
        {
            **{name: execution.get(name) for name in keep},
            "assertions": [(a["name"], a["passed"]) for a in execution["assertions"]],
            "url": execution["request"]["url"],
            "code": (execution.get("response") or {}).get("code"),
        }
        for execution in report["run"]["executions"]
    ]


def owners(services: Services, run_id: str) -> list[str]:
    progress = services.registry.progress(run_id)
    return [str(progress[f"b0:{n}:owner"]) for n in range(STEPS)]


def test_inlined_steps_report_exactly_as_steps_sent_through_the_broker(
    app: Celery, settings: Settings, base_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    services = Services.of(app)
    environment = VariableFile("env", "env-1", [{"key": "baseUrl", "value": base_url}])
    reports, holders, noted = [], [], []
    with in_process_worker(app, [settings.queue_for(settings.default_network)]):
        for steps in (inline.INLINE_STEPS, 0):  # inlined, then every step through the broker
            monkeypatch.setattr(inline, "INLINE_STEPS", steps)
            run_id = start_run(app, RunRequest(chained_sequence(), environment))
            report = wait_for_report(services, run_id, 60)
            assert report is not None
            reports.append(report)
            holders.append(owners(services, run_id))
            progress = services.registry.progress(run_id)
            noted.append([progress.get(f"b0:{n}:sent") for n in range(STEPS)])
    inlined, brokered = reports
    assert comparable(inlined) == comparable(brokered)
    assert all(a["passed"] for e in inlined["run"]["executions"] for a in e["assertions"])
    assert [len(e["assertions"]) for e in inlined["run"]["executions"]] == [0, 1, 0, 2, 2, 2]
    # Inlined: step n is held as "<task id>/n" of the task that ran step 0; else each
    # step is its own delivery, under the task id it took over.
    first = holders[0][0]
    assert holders[0][1:] == [f"{first}/{n}" for n in range(1, STEPS)]
    assert not any("/" in holder for holder in holders[1])
    assert (
        noted[0] == ["GET"] * STEPS == noted[1]
    )  # noted with the claim, or on sending  # (each replaced the one before)


def test_a_hop_to_another_network_goes_through_its_queue(
    app: Celery, settings: Settings, base_url: str, tmp_path: Path
) -> None:
    """Steps 0-1 and 4 go to the default network, 2-3 to another (by host): a step runs
    inlined only after a step of its own network; the others are sent to their queue."""
    other = f"lo{settings.default_network}"
    networks = tmp_path / "networks.yaml"
    networks.write_text(
        yaml.safe_dump({"default": settings.default_network, "networks": {other: ["localhost"]}})
    )
    routed = replace(settings, networks_file=networks)
    routed_app = create_app(routed)
    services = Services.of(routed_app)
    port = base_url.rsplit(":", 1)[1]
    hosts = ["127.0.0.1", "127.0.0.1", "localhost", "localhost", "127.0.0.1"]
    items = []
    for n, host in enumerate(hosts):
        checks = [f'pm.environment.set("v", "{n}");']
        if n:
            checks.append(prev_check(n))
        url = f"http://{host}:{port}/get?step={n}&prev={{{{v}}}}"
        items.append(
            {
                "name": f"s{n}",
                "request": {"method": "GET", "url": url},
                "event": [{"listen": "test", "script": {"exec": checks}}],
            }
        )
    sequence = {"info": {"_postman_id": uuid.uuid4().hex, "name": "hops"}, "item": items}
    queues = [routed.queue_for(routed.default_network), routed.queue_for(other)]
    with in_process_worker(routed_app, queues):
        run_id = start_run(routed_app, RunRequest(sequence, VariableFile("env", "env-1", [])))
        report = wait_for_report(services, run_id, 60)
    assert report is not None
    executions = report["run"]["executions"]
    assert [e["network"] for e in executions] == [
        routed.default_network,
        routed.default_network,
        other,
        other,
        routed.default_network,
    ]
    assert all(a["passed"] for e in executions for a in e["assertions"])
    progress = services.registry.progress(run_id)
    holder = [str(progress[f"b0:{n}:owner"]) for n in range(len(hosts))]
    assert [str(progress[f"b0:{n}:started"]["queue"]) for n in range(len(hosts))] == [
        queues[0],
        queues[0],
        queues[1],
        queues[1],
        queues[0],
    ]
    inlined = ["/" in h for h in holder]
    assert inlined == [False, True, False, True, False]


def test_a_step_for_another_queue_is_not_inlined(
    app: Celery, settings: Settings, base_url: str
) -> None:
    """The budget lets a step run here only when it goes to the queue its task came from."""

    class Signature:
        def __init__(self, **options: Any) -> None:
            self.options = options

    budget = inline.InlineBudget("task-1", "net.a")
    assert budget.allows(Signature(queue="net.a"))
    assert not budget.allows(Signature(queue="net.b"))
    assert not budget.allows(Signature(queue="net.a", countdown=5))
    assert not inline.InlineBudget("task-1", "").allows(Signature(queue=""))
    late = inline.InlineBudget("task-1", "net.a", started=time.monotonic() - 2)
    assert not late.allows(Signature(queue="net.a"))


def ghost_inlines_step_1(
    app: Celery, settings: Settings, base_url: str, sent: str
) -> tuple[str, StepHolder, StepHolder, inline.InlineBudget]:
    """The ghost worker runs step 0 of a run and records it, claiming step 1 inlined
    (``sent``: the method noted with the claim); its heartbeat is about to lapse.

    Returns the run id, the ghost's delivery of step 0, its inlined step 1 and its budget.
    """
    services = Services.of(app)
    registry = services.registry
    environment = VariableFile("env", "env-1", [{"key": "baseUrl", "value": base_url}])
    run_id = start_run(app, RunRequest(chained_sequence(), environment))
    queue = settings.queue_for(settings.default_network)
    registry.redis.delete(queue)  # step 0's message: this test is its delivery
    args = [run_id, "b0", 0, {"index": 0}]
    entry = {"args": args, "queue": queue, "tag": "tag-0", "task": "task-0", "token": ""}
    ghost = StepHolder(GHOST, "task-0", queue, entry)
    services.workers.heartbeat(GHOST, 0.05)
    start = registry.begin_step(run_id, "b0:0", "b0", ghost, token="", with_ticket=False)
    assert start.outcome == "run"
    budget = inline.InlineBudget("task-0", queue)
    next_args = [run_id, "b0", 1, {"index": 1}]
    step_1 = budget.holder(ghost, 1, next_args)
    result = {"executions": [], "next": {"index": 1}}
    handoff = ("b0:1", queue, next_args)
    for _ in range(2):  # a retried call of the same delivery answers the same, claims no more
        finished = registry.finish_step(
            run_id, "b0:0", "b0", result, {}, handoff, ghost, step_1, sent
        )
        assert finished == (True, True)
        progress = registry.progress(run_id)
        assert progress["b0:1:owner"] == "task-0/1" and progress["b0:1:attempts"] == 1
        assert progress.get("b0:1:sent") == (sent or None)
    held = services.workers.held(GHOST)
    assert list(held) == [f"{run_id}|b0:1"]  # step 1 only: step 0 is recorded
    assert held[f"{run_id}|b0:1"]["task"] == "task-0/1"
    assert held[f"{run_id}|b0:1"]["phase"] == ("sent" if sent else "started")
    time.sleep(0.1)
    return run_id, ghost, step_1, budget


def test_an_inlined_step_is_held_from_the_instant_the_step_before_is_recorded(
    app: Celery, settings: Settings, base_url: str
) -> None:
    """Recording step 0 claims step 1 for its inlined holder in the same call: the worker
    holds step 1 (phase started) and no longer step 0. Lost before step 1's request went
    out, step 1 is sent again; the lost worker coming back can neither send nor record it."""
    services = Services.of(app)
    registry = services.registry
    queue = settings.queue_for(settings.default_network)
    run_id, _ghost, step_1, budget = ghost_inlines_step_1(app, settings, base_url, "")
    assert resolve_lost(services, GHOST) == 1
    progress = registry.progress(run_id)
    assert str(progress["b0:1:owner"]).startswith("token:")
    assert str(progress["b0:1:note"]).startswith(f"sent again: worker {GHOST} was lost before")
    assert [m for m in registry.redis.lrange(queue, 0, -1) if b"step=b0:1" in m]
    # The ghost was only cut off: its inlined step may neither go out nor be recorded.
    assert registry.mark_sent(run_id, "b0:1", "GET", step_1) is False
    late = {"executions": [], "next": {"index": 2}}
    handoff_2 = ("b0:2", queue, [run_id, "b0", 2, {"index": 2}])
    step_2 = budget.holder(step_1, 2, handoff_2[2])
    assert registry.finish_step(run_id, "b0:1", "b0", late, {}, handoff_2, step_1, step_2) == (
        False,
        False,
    )
    assert "b0:2:owner" not in registry.progress(run_id)
    with in_process_worker(app, [queue]):
        report = wait_for_report(services, run_id, 60)
    assert report is not None
    executions = report["run"]["executions"]
    assert [e["item_name"] for e in executions] == [f"s{n}" for n in range(1, STEPS)]
    assert executions[0]["attempt"] == 2


def test_an_unsafe_request_noted_with_its_claim_is_never_sent_again(
    app: Celery, settings: Settings, base_url: str
) -> None:
    """An inlined step whose request is the first thing it does is noted as sent in the
    call that claims it (no round trip of its own): lost then, its POST is reported as
    outcome unknown and not sent again, as after any other noted send."""
    services = Services.of(app)
    queue = settings.queue_for(settings.default_network)
    run_id, _ghost, _step_1, _budget = ghost_inlines_step_1(app, settings, base_url, "POST")
    assert resolve_lost(services, GHOST) == 1
    assert not [m for m in services.registry.redis.lrange(queue, 0, -1) if b"step=b0:1" in m]
    report = services.store.get(run_id)  # its only branch ended there: reported at once
    assert report is not None
    [step_1, *rest] = report["run"]["executions"]
    assert step_1["item_name"] == "s1"
    assert step_1["errors"][0]["name"] == "OutcomeUnknown"
    assert "was lost after sending it (POST)" in step_1["errors"][0]["message"]
    assert rest and all(e["errors"][0]["name"] == "RunIncomplete" for e in rest)


def killed_mid_step_run(app: Celery, base_url: str, tag: str, method: str) -> str:
    """first (GET, at once), slow (``method``, 20 s at the target), last (GET): one sequence."""

    def step(name: str, verb: str, ms: int) -> JSON:
        return {
            "name": name,
            "request": {"method": verb, "url": f"{base_url}/r/{tag}/{name}?ms={ms}"},
            "event": [
                {
                    "listen": "test",
                    "script": {"exec": ['pm.test("ok", () => pm.response.to.have.status(200));']},
                }
            ],
        }

    items = [step("first", "GET", 0), step("slow", method, 20_000), step("last", "GET", 0)]
    collection = {"info": {"_postman_id": uuid.uuid4().hex, "name": "killed"}, "item": items}
    return start_run(app, RunRequest(collection, VariableFile("env", "env-1", [])))


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_a_worker_killed_in_an_inlined_step_loses_nothing_and_the_run_reports_once(
    settings: Settings, target: RecordingTarget, method: str
) -> None:
    settings = replace(settings, worker_lapse=3.0, run_deadline=120)
    app = create_app(settings)
    services = Services.of(app)
    queue = settings.queue_for(settings.default_network)
    workers = [WorkerProcess(settings, [queue], name) for name in ("a", "b")]
    try:
        for worker in workers:
            worker.wait_ready(app, timeout=60)
        tag = uuid.uuid4().hex[:10]
        run_id = killed_mid_step_run(app, target.base_url, tag, method)
        wait_until(lambda: target.received(tag)[(method, "slow")] == 1, 30, "slow was sent")
        progress = services.registry.progress(run_id)
        # The slow step runs inlined, in the task that ran the first step.
        assert str(progress["b0:1:owner"]) == f"{progress['b0:0:owner']}/1"
        holder = str(progress["b0:1:started"]["worker"])
        assert holder == str(progress["b0:0:started"]["worker"])
        [doomed] = [w for w in workers if holder.startswith(f"{w.name}@")]
        [survivor] = [w for w in workers if w is not doomed]
        doomed.kill()
        stored_at = wait_stored(services, run_id, 40)
        assert stored_at is not None, f"run {run_id} was lost: {survivor.log()}"
        report = services.store.get(run_id)
        assert report is not None
        first, slow, last = report["run"]["executions"]
        seen = target.received(tag)
        if method == "GET":
            assert seen == {("GET", "first"): 1, ("GET", "slow"): 2, ("GET", "last"): 1}
            assert slow["attempt"] == 2 and slow["worker"].startswith(f"{survivor.name}@")
            assert [a["passed"] for a in slow["assertions"] + last["assertions"]] == [True, True]
            note = f"retried: worker {holder} was lost after sending this GET request"
            assert any(note in line for _, line in slow["console"]), slow["console"]
        else:
            assert seen == {("GET", "first"): 1, ("POST", "slow"): 1}
            assert slow["errors"][0]["name"] == "OutcomeUnknown"
            assert last["errors"][0]["name"] == "RunIncomplete"
        assert [a["passed"] for a in first["assertions"]] == [True]
        time.sleep(2)  # anything still on its way would change the stored report now
        assert services.store.get(run_id) == report
        assert services.store.list(report["collectionId"]).total == 1
        assert services.workers.held(holder) == {}
    finally:
        for worker in workers:
            worker.stop()
        for key in services.registry.redis.scan_iter(f"{settings.key_prefix}*"):
            services.registry.redis.delete(key)
