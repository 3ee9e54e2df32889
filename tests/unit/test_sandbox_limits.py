"""Limits that hold for everything a script starts: timers, promises, sendRequest, console."""

from __future__ import annotations

import resource
import time
from collections.abc import Iterator
from typing import Any

import pytest

from pmrunner.errors import ScriptTimeoutError
from runtime.loading import load_collection
from runtime.options import RunOptions, Timeouts
from runtime.runner import run_collection
from runtime.sandbox.engine import SandboxContext
from tests.echo_server import serve
from tests.unit.sandbox_helpers import collection
from tests.unit.test_sandbox import RecordingServices, response, scopes

JSON = dict[str, Any]
LIMIT_MS = 1000
ALIVE = 'pm.test("alive", () => pm.expect([1, 2].join("-")).to.equal("1-2"))'


@pytest.fixture()
def sandbox() -> Iterator[SandboxContext]:
    context = SandboxContext()
    context.boot()  # the limit is the script's: boot time is not part of it
    yield context
    context.close()


def execute(sandbox: SandboxContext, source: str, services: Any = None) -> Any:
    return sandbox.execute(
        listen="test",
        source=source,
        context={**scopes(), "response": response()},
        services=services or RecordingServices(),
        timeout_ms=LIMIT_MS,
    )


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def assert_stopped_within_limit(sandbox: SandboxContext, source: str) -> None:
    started = time.monotonic()
    with pytest.raises(ScriptTimeoutError, match=f"timed out after {LIMIT_MS} ms"):
        execute(sandbox, source)
    assert time.monotonic() - started < LIMIT_MS / 1000 + 1
    # Nothing keeps running once the script is stopped: the process goes idle.
    before = cpu_seconds()
    time.sleep(1)
    assert cpu_seconds() - before < 0.3
    assert [a["name"] for a in execute(sandbox, ALIVE).assertions] == ["alive"]


@pytest.mark.parametrize(
    "source",
    [
        "setTimeout(function () { while (true) {} }, 0)",
        "setInterval(function () { while (true) {} }, 5)",
        "Promise.resolve().then(function () { while (true) {} })",
        "(async () => { await null; while (true) {} })()",
        "setTimeout(() => Promise.resolve().then(() => { for (;;) {} }), 10)",
        "while (true) {}",
    ],
)
def test_a_script_and_what_it_starts_stop_at_the_limit(
    sandbox: SandboxContext, source: str
) -> None:
    assert_stopped_within_limit(sandbox, source)


def test_atomics_wait_async_is_not_a_way_around_the_limit(sandbox: SandboxContext) -> None:
    source = 'pm.test("gone", () => pm.expect(Atomics.waitAsync).to.be.undefined)'
    outcome = execute(sandbox, source)
    assert outcome.assertions[0]["passed"]


class SlowServices(RecordingServices):
    """Each request takes 20 ms; records the time budget each one was given."""

    def __init__(self) -> None:
        super().__init__()
        self.budgets: list[float | None] = []

    def send_request(
        self, request: JSON, *, timeout: float | None = None
    ) -> tuple[JSON | None, JSON | None]:
        self.budgets.append(timeout)
        time.sleep(0.02)
        return super().send_request(request, timeout=timeout)


def test_send_requests_count_in_the_script_time(sandbox: SandboxContext) -> None:
    services = SlowServices()
    source = """
    let sent = 0;
    function next() { if (sent++ < 10000) { pm.sendRequest('http://127.0.0.1/x', next); } }
    next();
    """
    started = time.monotonic()
    try:
        outcome = execute(sandbox, source, services)
        assert "timed out" in outcome.errors[0]["message"]  # the sandbox's own report
    except ScriptTimeoutError:
        pass
    assert time.monotonic() - started < LIMIT_MS / 1000 + 1
    assert 10 < len(services.budgets) < 100
    assert all(b is not None and b <= LIMIT_MS / 1000 for b in services.budgets)


def test_a_send_request_to_a_hanging_server_is_cut_at_the_script_limit() -> None:
    with serve() as base_url:
        source = collection(
            "hang",
            f"{base_url}/get",
            f"pm.sendRequest('{base_url}/delay/20000', (err) => pm.test('cut', () => {{}}));",
        )
        started = time.monotonic()
        options = RunOptions(timeouts=Timeouts(script=LIMIT_MS))  # no request timeout
        run = run_collection(load_collection(source), options=options)
    assert time.monotonic() - started < LIMIT_MS / 1000 + 2
    assert run.executions[0].errors or run.executions[0].assertions


def test_console_output_is_capped_per_script(sandbox: SandboxContext) -> None:
    source = "for (let i = 0; i < 500; i++) console.log('x'.repeat(100000));"  # 50 MB
    outcome = execute(sandbox, source)
    printed = sum(len(text) for _, text in outcome.console)
    cap = sandbox.limits.max_console_chars
    assert cap <= printed < cap + 200
    notes = [text for _, text in outcome.console if "capped" in text]
    assert notes == [
        f"console output capped at {cap} characters for this script; the rest was dropped"
    ]
    assert execute(sandbox, "console.log('next script prints again')").console == [
        ("log", "next script prints again")
    ]


@pytest.mark.parametrize(
    ("source", "name"),
    [
        ("Array.prototype.join = function () { return 'x'; }", "Array.prototype.join"),
        ("Array.prototype.push = function () { return 0; }", "Array.prototype.push"),
        ("String.prototype.trim = function () { return ''; }", "String.prototype.trim"),
        ("Object.keys = () => []", "Object.keys"),
        ("Function.prototype.call = null", "Function.prototype.call"),
        ("Promise.prototype.then = function () {}", "Promise.prototype.then"),
        ("JSON.parse = (text) => ({})", "JSON.parse"),  # the sandbox's JSON (liquid-json)
        ("JSON.stringify = () => ''", "JSON.stringify"),
    ],
)
def test_replacing_a_built_in_fails_that_script_clearly(
    sandbox: SandboxContext, source: str, name: str
) -> None:
    started = time.monotonic()
    outcome = execute(sandbox, source)
    assert time.monotonic() - started < 1
    assert outcome.errors[0]["name"] == "TypeError"
    assert f"Cannot replace the built-in {name}" in outcome.errors[0]["message"]
    assert execute(sandbox, ALIVE).assertions[0]["passed"]


def test_own_properties_and_new_helpers_stay_allowed(sandbox: SandboxContext) -> None:
    source = """
    function Money(v) { this.v = v; }
    Money.prototype.toString = function () { return '$' + this.v; };
    const point = { x: 1 }; point.hasOwnProperty = () => 'mine';
    Array.prototype.last = function () { return this[this.length - 1]; };
    pm.test('override on own objects', () => pm.expect(String(new Money(3))).to.equal('$3'));
    pm.test('own method', () => pm.expect(point.hasOwnProperty()).to.equal('mine'));
    pm.test('new helper', () => pm.expect([1, 2].last()).to.equal(2));
    """
    outcome = execute(sandbox, source)
    assert [(a["name"], a["passed"]) for a in outcome.assertions] == [
        ("override on own objects", True),
        ("own method", True),
        ("new helper", True),
    ]
    later = execute(sandbox, "pm.test('helper stays', () => pm.expect([3].last()).to.equal(3))")
    assert later.assertions[0]["passed"]


def test_a_run_whose_script_replaces_join_still_reports() -> None:
    with serve() as base_url:
        source = collection("join", f"{base_url}/get", "Array.prototype.join = () => 'x';")
        run = run_collection(load_collection(source))
    errors = run.executions[0].errors
    assert [e.name for e in errors] == ["TypeError"]
    assert "Array.prototype.join" in errors[0].message
