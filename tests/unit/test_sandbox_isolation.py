"""Runs never see each other's scripts: one context per run, never handed to another."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator

import pytest

from runtime.loading import VariableFile, load_collection
from runtime.options import RunOptions, ScriptLimits, Timeouts
from runtime.runner import run_collection
from runtime.sandbox.engine import SandboxContext
from runtime.sandbox.pool import ContextPool
from tests.echo_server import serve
from tests.unit.sandbox_helpers import (
    PLANT,
    REVEAL,
    SECRET,
    VICTIM,
    collection,
    secret_environment,
    within_run_collection,
)
from tests.unit.test_sandbox import RecordingServices, response, scopes


@pytest.fixture(scope="module")
def base_url() -> Iterator[str]:
    with serve() as url:
        yield url


def run_json(source: dict, environment: list | None = None, script_ms: int = 0) -> dict:
    options = RunOptions(timeouts=Timeouts(script=script_ms))
    env = VariableFile("env", "env-1", environment) if environment else None
    return run_collection(load_collection(source), environment=env, options=options).to_dict()


def passed(report: dict) -> list[tuple[str, bool]]:
    return [(a["name"], a["passed"]) for e in report["executions"] for a in e["assertions"]]


def test_a_secret_never_reaches_another_collections_run_on_the_same_thread(base_url: str) -> None:
    env = secret_environment(base_url)
    attacker = run_json(collection("attacker", "{{baseUrl}}/get", PLANT), env[:1], script_ms=1500)
    assert ("planted", True) in passed(attacker)
    victim = run_json(collection("victim", "{{baseUrl}}/headers", VICTIM, auth_token=True), env)
    assert passed(victim) == [("victim ran", True)]
    reveal = run_json(collection("attacker", "{{baseUrl}}/get", REVEAL), env[:1])
    assert all(ok for _, ok in passed(reveal)), passed(reveal)
    stored = json.dumps(reveal)
    assert SECRET not in stored
    assert any("found: []" in line for e in reveal["executions"] for _, line in e["console"])


def test_scripts_of_one_run_share_their_context_as_in_postman(base_url: str) -> None:
    report = run_json(within_run_collection(f"{base_url}/get"))
    assert passed(report) == [("helpers shared", True), ("global shared", True)]


def test_the_next_run_starts_clean_after_a_run_that_shared_helpers(base_url: str) -> None:
    run_json(within_run_collection(f"{base_url}/get"))
    check = "pm.test('no helpers', () => pm.expect(({}).utils).to.equal(undefined));"
    assert passed(run_json(collection("next", f"{base_url}/get", check))) == [("no helpers", True)]


def execute(scripts: object, source: str) -> list[tuple[str, bool]]:
    outcome = scripts.execute(  # type: ignore[attr-defined]
        listen="test",
        source=source,
        context={**scopes(), "response": response()},
        services=RecordingServices(),
        timeout_ms=2000,
    )
    return [(a["name"], a["passed"]) for a in outcome.assertions]


def test_a_pool_binds_one_context_per_run_and_never_reuses_one() -> None:
    pool = ContextPool(capacity=3)
    seen: list[SandboxContext] = []
    for number in range(4):
        run = f"run-{number}"
        context = pool.acquire(run, ScriptLimits())
        assert pool.acquire(run, ScriptLimits()) is context  # the same run: the same context
        pool.done(run)
        pool.done(run)
        assert all(context is not earlier for earlier in seen)
        seen.append(context)
        pool.release(run)
        assert not context.booted
    pool.close()


def test_a_full_pool_evicts_the_least_recently_used_idle_run() -> None:
    pool = ContextPool(capacity=2)
    first = pool.scripts_for("first")
    second = pool.scripts_for("second")
    assert execute(first, "x = 1; pm.test('a', () => {})") == [("a", True)]
    assert execute(second, "pm.test('b', () => {})") == [("b", True)]
    third = pool.scripts_for("third")
    assert execute(third, "pm.test('no x', () => pm.expect(typeof x).to.equal('undefined'))") == [
        ("no x", True)
    ]
    assert pool.stats()["bound"] == 2
    # "first" was evicted: it starts over in a fresh context, never in another run's.
    assert execute(first, "pm.test('x gone', () => pm.expect(typeof x).to.equal('undefined'))") == [
        ("x gone", True)
    ]
    pool.close()


def test_a_run_waits_when_every_context_is_in_use() -> None:
    pool = ContextPool(capacity=1)
    busy = pool.acquire("busy", ScriptLimits())
    got: list[SandboxContext] = []
    waiter = threading.Thread(target=lambda: got.append(pool.acquire("other", ScriptLimits())))
    waiter.start()
    time.sleep(0.3)
    assert not got  # no second context beyond the capacity
    pool.done("busy")
    waiter.join(10)
    assert got and got[0] is not busy
    pool.done("other")
    pool.close()


def test_idle_contexts_are_closed_and_warm_ones_are_booted_ahead() -> None:
    pool = ContextPool(capacity=3, warm=2, idle_seconds=0.3)
    assert pool.warm_up(timeout=60) == 2
    context = pool.acquire("run", ScriptLimits())
    assert context.booted  # a warm context: no boot on the run's first script
    pool.done("run")
    deadline = time.monotonic() + 10
    while pool.stats()["bound"] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert pool.stats()["bound"] == 0 and not context.booted
    assert pool.warm_up(timeout=60) == 2  # the filler replaced the one taken
    pool.configure(warm=0)
    pool.close()


def test_a_context_booted_ahead_serves_the_next_run_and_only_it() -> None:
    pool = ContextPool(capacity=3)
    pool.boot_ahead()
    pool.boot_ahead()  # one is ready or booting: no second
    stats = pool.stats()
    assert stats["fresh"] + stats["booting"] == 1
    pool.wait_for_boots()
    assert pool.stats()["booting"] == 0 and pool.stats()["fresh"] == 1
    context = pool.acquire("run", ScriptLimits())
    assert context.booted and context.boots == 1
    assert pool.stats()["fresh"] + pool.stats()["booting"] == 0
    pool.done("run")
    other = pool.acquire("other run", ScriptLimits())
    assert other is not context
    pool.done("other run")
    pool.close()
