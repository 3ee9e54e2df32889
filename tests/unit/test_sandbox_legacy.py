"""Postman's legacy script API stays whole while other scripts skip its setup."""

from __future__ import annotations

import pytest

from runtime.options import ScriptLimits
from runtime.sandbox.engine import SandboxContext
from runtime.sandbox.legacy import uses_legacy_api
from tests.unit.test_sandbox import response, run

PM_ONLY = 'pm.test("status", () => pm.response.to.have.status(200));'
LEGACY = """
tests["code is 200"] = responseCode.code === 200;
tests["body has a"] = JSON.parse(responseBody).a === 1;
postman.setEnvironmentVariable("legacy", "yes");
"""


@pytest.mark.parametrize(
    "source",
    [
        PM_ONLY,
        'pm.environment.set("a", pm.globals.get("b")); pm.request.headers.add({key: "k"});',
        "const access_token = pm.response.json().data; pm.iterationData.get('x');",
        "pm.info.iteration; pm.response.responseTime; pm.response.json().request",
        "// no legacy name here\nlet my_tests = 1; const $data = 2;",
    ],
)
def test_scripts_without_legacy_names_skip_the_setup(source: str) -> None:
    assert not uses_legacy_api(source)


@pytest.mark.parametrize(
    "source",
    [
        LEGACY,
        'tests["x"] = true',
        "const body = responseBody;",
        'postman.setNextRequest("a")',
        "_.each([1], v => v)",
        "CryptoJS.MD5('a')",
        "const o = JSON.parse(pm.response.text());",  # liquid-json in Postman
        "[...data].length",  # a spread reads the global
        "pm . environment",  # not a property access in the text's form we know
        "this.tests.x = true",  # the sandbox's `this` holds the globals
        'eval("tes" + "ts")["x"] = true',
        "\\u0074ests.x = true",  # an escaped identifier
        '// tests["x"] = true',  # comments too: a false alarm only costs time
    ],
)
def test_scripts_that_may_name_a_legacy_global_keep_it(source: str) -> None:
    assert uses_legacy_api(source)


@pytest.fixture(scope="module")
def sandbox() -> SandboxContext:
    context = SandboxContext(ScriptLimits(max_memory_bytes=128 * 2**20))
    yield context
    context.close()


def test_legacy_scripts_work_between_scripts_that_skip_the_setup(
    sandbox: SandboxContext,
) -> None:
    for _ in range(2):
        plain = run(sandbox, PM_ONLY)
        assert [(a["name"], a["passed"]) for a in plain.assertions] == [("status", True)]
        assert not plain.errors and not plain.console
        legacy = run(sandbox, LEGACY)
        assert [(a["name"], a["passed"]) for a in legacy.assertions] == [
            ("code is 200", True),
            ("body has a", True),
        ]
        assert not legacy.errors
        assert {"key": "legacy", "value": "yes"}.items() <= legacy.scopes["environment"][0].items()
        # Deprecation warnings, as in Postman.
        assert any("deprecated" in text for _level, text in legacy.console)


def test_legacy_json_is_liquid_json(sandbox: SandboxContext) -> None:
    # Postman's legacy setup hands scripts liquid-json, which reads a body that
    # starts with a byte order mark; a script naming JSON keeps it.
    body = '\ufeff{"a": 1}'
    outcome = run(
        sandbox,
        'pm.test("bom", () => pm.expect(JSON.parse(pm.response.text()).a).to.equal(1));',
        response=response(body=body),
    )
    assert [a["passed"] for a in outcome.assertions] == [True], outcome.assertions
