"""The script sandbox: Postman's bundle in V8, with limits and host services."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from pmrunner.errors import ScriptMemoryError, ScriptTimeoutError
from runtime.options import ScriptLimits
from runtime.sandbox.engine import SandboxContext, context_for_this_thread

JSON = dict[str, Any]


class RecordingServices:
    def __init__(self) -> None:
        self.sent: list[JSON] = []
        self.cookie_calls: list[tuple[str, list[Any]]] = []

    def send_request(
        self, request: JSON, *, timeout: float | None = None
    ) -> tuple[JSON | None, JSON | None]:
        self.sent.append(request)
        if "fail" in str(request.get("url")):
            return {"name": "Error", "message": "connect ECONNREFUSED 127.0.0.1:9"}, None
        return None, {"code": 201, "status": "Created", "header": [], "body": '{"ok": true}'}

    def cookie_store(self, method: str, args: list[Any]) -> Any:
        self.cookie_calls.append((method, args))
        if method == "findCookies":
            return [{"key": "sid", "value": "abc", "domain": "127.0.0.1", "path": "/"}]
        return None


def scopes(**values: list[JSON]) -> JSON:
    names = ("environment", "globals", "collectionVariables", "_variables")
    return {name: {"values": values.get(name, [])} for name in names}


def response(code: int = 200, body: str = '{"a": 1}') -> JSON:
    return {
        "code": code,
        "status": "OK",
        "header": [{"key": "Content-Type", "value": "application/json"}],
        "body": body,
        "responseTime": 5,
    }


@pytest.fixture(scope="module")
def sandbox() -> SandboxContext:
    context = SandboxContext(ScriptLimits(max_memory_bytes=128 * 2**20))
    yield context
    context.close()


def run(sandbox: SandboxContext, source: str, listen: str = "test", **context: Any) -> Any:
    services = context.pop("services", None) or RecordingServices()
    full = {**scopes(), "request": {"url": "http://127.0.0.1/x", "method": "GET"}, "data": {}}
    if listen == "test":
        full["response"] = response()
    full.update(context)
    return sandbox.execute(
        listen=listen,
        source=source,
        context=full,
        services=services,
        timeout_ms=2000,
        cursor={"iteration": 2, "cycles": 5},
        legacy={"_itemName": "Get thing", "_itemId": "item-1"},
    )


def test_pm_test_results_pass_and_fail(sandbox: SandboxContext) -> None:
    outcome = run(
        sandbox,
        """
        pm.test("status is 200", () => pm.response.to.have.status(200));
        pm.test("a is 2", () => pm.expect(pm.response.json().a).to.equal(2));
        """,
    )
    assert [(a["name"], a["passed"]) for a in outcome.assertions] == [
        ("status is 200", True),
        ("a is 2", False),
    ]
    assert outcome.assertions[1]["error"]["message"] == "expected 1 to equal 2"


def test_legacy_globals(sandbox: SandboxContext) -> None:
    outcome = run(
        sandbox,
        """
        tests["code is 200"] = responseCode.code === 200;
        tests["body has a"] = JSON.parse(responseBody).a === 1;
        postman.setEnvironmentVariable("legacy", "yes");
        """,
    )
    assert [(a["name"], a["passed"]) for a in outcome.assertions] == [
        ("code is 200", True),
        ("body has a", True),
    ]
    assert {"key": "legacy", "value": "yes"}.items() <= outcome.scopes["environment"][0].items()


def test_variable_scopes_come_back(sandbox: SandboxContext) -> None:
    outcome = run(
        sandbox,
        """
        pm.environment.set("token", "t1");
        pm.globals.set("g", 1);
        pm.collectionVariables.set("c", "x");
        pm.variables.set("local", "l");
        pm.test("reads precedence", () => pm.expect(pm.variables.get("both")).to.equal("env"));
        """,
        **scopes(
            environment=[{"key": "both", "value": "env"}],
            globals=[{"key": "both", "value": "glob"}],
        ),
    )
    assert outcome.assertions[0]["passed"], outcome.assertions
    keys = {name: [v["key"] for v in values] for name, values in outcome.scopes.items()}
    assert "token" in keys["environment"]
    assert "g" in keys["globals"]
    assert keys["collectionVariables"] == ["c"]
    assert keys["_variables"] == ["local"]


def test_libraries_scripts_require(sandbox: SandboxContext) -> None:
    outcome = run(
        sandbox,
        """
        const _ = require("lodash");
        const CryptoJS = require("crypto-js");
        const moment = require("moment");
        const uuid = require("uuid");
        const xml2js = require("xml2js");
        const tv4 = require("tv4");
        const Ajv = require("ajv");
        const cheerio = require("cheerio");
        pm.test("lodash", () => pm.expect(_.sum([1, 2])).to.equal(3));
        pm.test("crypto-js", () => pm.expect(CryptoJS.MD5("a").toString())
            .to.equal("0cc175b9c0f1b6a831c399e269772661"));
        pm.test("moment", () => pm.expect(moment("2020-01-02").format("YYYY")).to.equal("2020"));
        pm.test("uuid", () => pm.expect(uuid.v4()).to.match(/^[0-9a-f-]{36}$/));
        pm.test("tv4", () => pm.expect(tv4.validate({a: 1}, {type: "object"})).to.be.true);
        pm.test("ajv", () => pm.expect(new Ajv().validate({type: "number"}, 3)).to.be.true);
        pm.test("cheerio", () => pm.expect(cheerio.load("<p>hi</p>")("p").text()).to.equal("hi"));
        xml2js.parseString("<a>1</a>", (err, res) => {
            pm.test("xml2js", () => pm.expect(res.a).to.equal("1"));
        });
        pm.test("jsonSchema", () => pm.response.to.have.jsonSchema({type: "object"}));
        """,
    )
    failed = [a for a in outcome.assertions if not a["passed"]]
    assert not failed and not outcome.errors, (failed, outcome.errors)
    assert len(outcome.assertions) == 9


def test_sdk_objects_and_scripts_get_random_v4_uuids(sandbox: SandboxContext) -> None:
    outcome = run(
        sandbox,
        """
        const uuid = require("uuid");
        const v4 = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
        const ids = [pm.environment.id, pm.globals.id, pm.response.id];
        for (let i = 0; i < 2000; i++) { ids.push(uuid.v4()); }
        pm.test("all v4", () => ids.forEach(id => pm.expect(id).to.match(v4)));
        pm.test("all distinct", () => pm.expect(new Set(ids).size).to.equal(ids.length));
        const counts = {};
        ids.forEach(id => id.replace(/-/g, "").split("")
            .forEach(c => counts[c] = (counts[c] || 0) + 1));
        pm.test("every hex digit", () => pm.expect(Object.keys(counts).length).to.equal(16));
        """,
    )
    assert [a["passed"] for a in outcome.assertions] == [True] * 3, outcome.assertions


def test_pm_info_and_console(sandbox: SandboxContext) -> None:
    outcome = run(
        sandbox,
        'console.log("it", pm.info.iteration, pm.info.requestName, {k: [1]}); console.warn("w")',
    )
    assert outcome.console == [("log", 'it 2 Get thing {"k":[1]}'), ("warn", "w")]


def test_set_next_request_and_null(sandbox: SandboxContext) -> None:
    assert run(sandbox, 'pm.execution.setNextRequest("Login")').next_request == "Login"
    ended = run(sandbox, "postman.setNextRequest(null)")
    assert ended.has_next_request and ended.next_request is None
    assert not run(sandbox, "1").has_next_request


def test_prerequest_changes_request_and_skips(sandbox: SandboxContext) -> None:
    outcome = run(
        sandbox,
        'pm.request.headers.add({key: "X-Trace", value: "1"}); pm.execution.skipRequest();',
        listen="prerequest",
    )
    assert outcome.skip_request
    assert {"key": "X-Trace", "value": "1"} in outcome.request["header"]


def test_result_carries_what_the_runner_reads(sandbox: SandboxContext) -> None:
    outcome = run(
        sandbox,
        """
        pm.environment.set("e", "1");
        pm.visualizer.set("<b>{{x}}</b>", {x: 1});
        pm.execution.setNextRequest("Next");
        """,
    )
    assert outcome.scopes["environment"] == [{"type": "any", "value": "1", "key": "e"}]
    assert set(outcome.scopes) == {"environment", "globals", "collectionVariables", "_variables"}
    assert outcome.visualizer == {"template": "<b>{{x}}</b>", "data": {"x": 1}}
    assert outcome.next_request == "Next"
    # A test script cannot change the request: it is not serialised back.
    assert outcome.request is None
    changed = run(sandbox, 'pm.request.url.addQueryParams("a=1")', listen="prerequest")
    assert changed.request is not None and changed.request["url"]["query"] == [
        {"key": "a", "value": "1"}
    ]


def test_a_one_line_test_script_takes_one_batch_of_three_evaluations(
    sandbox: SandboxContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The dispatch, a turn that runs the sandbox's first timer, and a turn
    # whose timer sends the result: one wake of V8's thread for the script.
    from runtime.sandbox.isolate import Isolate

    batches: list[int] = []
    eval_all = Isolate.eval_all

    def counting(self: Isolate, codes: Any, deadline: float) -> Any:
        batches.append(len(codes))
        return eval_all(self, codes, deadline)

    run(sandbox, "1")  # booted before counting
    monkeypatch.setattr(Isolate, "eval_all", counting)
    outcome = run(sandbox, 'pm.test("status", () => pm.response.to.have.status(200));')
    assert [a["passed"] for a in outcome.assertions] == [True]
    assert batches == [3]


def test_script_error_is_reported_and_context_survives(sandbox: SandboxContext) -> None:
    outcome = run(sandbox, 'throw new TypeError("boom")')
    assert outcome.errors[0]["name"] == "TypeError"
    assert outcome.errors[0]["message"] == "boom"
    assert run(sandbox, 'pm.test("next", () => {})').assertions[0]["passed"]


def test_send_request_goes_through_services(sandbox: SandboxContext) -> None:
    services = RecordingServices()
    outcome = run(
        sandbox,
        """
        pm.sendRequest("http://127.0.0.1:1/ok", (err, res) => {
            pm.test("sent", () => pm.expect(res.json().ok).to.be.true);
        });
        pm.sendRequest("http://127.0.0.1:1/fail", (err, res) => {
            pm.test("failed", () => pm.expect(err.message).to.include("ECONNREFUSED"));
        });
        """,
        services=services,
    )
    assert [a["passed"] for a in outcome.assertions] == [True, True], outcome.assertions
    assert len(services.sent) == 2


def test_async_await_send_request(sandbox: SandboxContext) -> None:
    outcome = run(
        sandbox,
        """
        const res = await pm.sendRequest("http://127.0.0.1:1/ok");
        pm.test("awaited", () => pm.expect(res.code).to.equal(201));
        """,
    )
    assert outcome.assertions and outcome.assertions[0]["passed"], (
        outcome.assertions,
        outcome.errors,
    )


def test_cookie_jar_goes_through_services(sandbox: SandboxContext) -> None:
    services = RecordingServices()
    outcome = run(
        sandbox,
        """
        pm.cookies.jar().get("http://127.0.0.1/", "sid", (err, value) => {
            pm.test("cookie", () => pm.expect(value).to.equal("abc"));
        });
        """,
        services=services,
    )
    assert outcome.assertions and outcome.assertions[0]["passed"], (
        outcome.assertions,
        outcome.errors,
    )
    assert services.cookie_calls[0][0] == "findCookies"


def test_timers_run(sandbox: SandboxContext) -> None:
    outcome = run(
        sandbox,
        """
        setTimeout(() => pm.test("timeout", () => {}), 20);
        let n = 0; const id = setInterval(() => { if (++n === 3) {
            clearInterval(id); pm.test("interval", () => pm.expect(n).to.equal(3)); } }, 5);
        """,
    )
    assert sorted(a["name"] for a in outcome.assertions if a["passed"]) == ["interval", "timeout"]


def test_endless_loop_is_stopped_and_context_recovers() -> None:
    sandbox = SandboxContext()
    started = time.monotonic()
    with pytest.raises(ScriptTimeoutError):
        sandbox.execute(
            listen="test",
            source="while (true) {}",
            context={**scopes(), "response": response()},
            services=RecordingServices(),
            timeout_ms=300,
        )
    assert time.monotonic() - started < 5
    outcome = sandbox.execute(
        listen="test",
        source='pm.test("alive", () => {})',
        context={**scopes(), "response": response()},
        services=RecordingServices(),
        timeout_ms=300,
    )
    assert outcome.assertions[0]["passed"]
    sandbox.close()


def test_async_timeout_is_reported_by_the_sandbox(sandbox: SandboxContext) -> None:
    outcome = sandbox.execute(
        listen="test",
        source="setTimeout(() => {}, 60000)",
        context={**scopes(), "response": response()},
        services=RecordingServices(),
        timeout_ms=200,
    )
    assert "timeout" in outcome.errors[0]["message"]


def test_memory_bomb_is_stopped_and_context_recovers() -> None:
    sandbox = SandboxContext(ScriptLimits(max_memory_bytes=96 * 2**20))
    with pytest.raises(ScriptMemoryError):
        sandbox.execute(
            listen="test",
            source="const a = []; while (true) { a.push(new Array(1e5).fill(1)); }",
            context={**scopes(), "response": response()},
            services=RecordingServices(),
            timeout_ms=20000,
        )
    outcome = sandbox.execute(
        listen="test",
        source='pm.test("alive", () => {})',
        context={**scopes(), "response": response()},
        services=RecordingServices(),
        timeout_ms=1000,
    )
    assert outcome.assertions[0]["passed"]
    sandbox.close()


def test_each_thread_gets_its_own_context() -> None:
    seen: list[int] = []

    def worker() -> None:
        context = context_for_this_thread()
        assert context is context_for_this_thread()
        seen.append(id(context))
        outcome = context.execute(
            listen="test",
            source='pm.test("t", () => {})',
            context={**scopes(), "response": response()},
            services=RecordingServices(),
            timeout_ms=2000,
        )
        assert outcome.assertions[0]["passed"]
        context.close()

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert len(set(seen)) == 2
