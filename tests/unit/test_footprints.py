"""What the planner sees a request touch: each way scripts read and write variables and cookies."""

from __future__ import annotations

from typing import Any

import pytest

from runtime.loading import load_collection
from scheduler.footprints import ANY, Footprint, cookie_scope, footprint

HOST = "127.0.0.1"


def print_of(
    tests: str = "", pre: str = "", url: str = "http://127.0.0.1:1/x", **extra: Any
) -> Footprint:
    events = [
        {"listen": listen, "script": {"exec": [code]}}
        for listen, code in (("prerequest", pre), ("test", tests))
        if code
    ]
    raw = {"name": "i", "request": {"method": "GET", "url": url}, "event": events, **extra}
    (item,) = load_collection({"info": {"name": "c"}, "item": [raw]}).items()
    return footprint(item, lambda text: text, extra.pop("written", None))


@pytest.mark.parametrize(
    ("code", "written"),
    [
        ('pm.environment.set("a", 1)', {"a"}),
        ("pm.globals.unset('a')", {"a"}),
        ("pm.collectionVariables.set(`a`, 1)", {"a"}),
        ('pm.variables.set("a", 1)', {"a"}),
        ('postman.setEnvironmentVariable("a", 1)', {"a"}),
        ('postman.setGlobalVariable("a", 1)', {"a"}),
        ('postman.clearEnvironmentVariable("a")', {"a"}),
        ("postman.clearEnvironmentVariables()", {ANY}),
        ("postman.clearGlobalVariables()", {ANY}),
        ("pm.environment.clear()", {ANY}),
        ("pm.environment.set(name, 1)", {ANY}),
        ('pm.environment.set("a" + n, 1)', {ANY}),
        ("pm.environment.set(`a${n}`, 1)", {ANY}),
        ('const env = pm.environment; env.set("a", 1)', {ANY}),
        ('pm["environment"].set("a", 1)', {ANY}),
        ("eval(\"pm.environment.set('a', 1)\")", {"a", ANY}),
        ('pm.test("t", () => pm.expect(1).to.equal(1))', set()),
    ],
)
def test_variable_writes_are_recognised(code: str, written: set[str]) -> None:
    assert print_of(tests=code).writes == written


@pytest.mark.parametrize(
    ("code", "read"),
    [
        ('pm.environment.get("a")', "a"),
        ('pm.iterationData.get("a")', "a"),
        ('pm.variables.has("a")', "a"),
        ('pm.globals.get("a" + n)', ANY),
        ("pm.variables.replaceIn('{{a}}')", ANY),
        ("pm.environment.toObject()", ANY),
        ("environment.a", ANY),
        ('globals["a"]', ANY),
        ("data.a", ANY),
        ('postman.getEnvironmentVariable("a")', ANY),
        ("const v = pm.variables; v.get('a')", ANY),
    ],
)
def test_variable_reads_are_recognised(code: str, read: str) -> None:
    assert read in print_of(tests=code).reads


@pytest.mark.parametrize(
    "code",
    [
        'pm.cookies.get("s")',
        'pm.cookies.has("s")',
        'postman.getResponseCookie("s")',
        "responseCookies.length",
    ],
)
def test_script_cookie_reads_are_the_requests_own_scope(code: str) -> None:
    cookieless = {"protocolProfileBehavior": {"disableCookies": True}}
    found = print_of(tests=code, **cookieless)
    assert (found.cookie_reads, found.cookie_writes) == ({HOST}, set())


@pytest.mark.parametrize(
    "code",
    [
        'pm.cookies.jar().set("http://x.test", "a", "1", () => {})',
        'pm.cookies.jar().get("http://x.test", "a", () => {})',
        'pm.sendRequest("http://x.test", () => {})',
    ],
)
def test_the_jar_and_send_request_touch_any_cookie_scope(code: str) -> None:
    found = print_of(pre=code)
    assert ANY in found.cookie_reads and ANY in found.cookie_writes


def test_every_request_reads_and_writes_its_hosts_cookies_unless_disabled() -> None:
    found = print_of()
    assert (found.cookie_reads, found.cookie_writes, found.stateful) == ({HOST}, {HOST}, True)
    off = print_of(protocolProfileBehavior={"disableCookies": True})
    assert (off.cookie_reads, off.cookie_writes, off.stateful) == (set(), set(), False)


@pytest.mark.parametrize(
    "pre",
    [
        'pm.request.url = "http://elsewhere.test/"',
        'pm.request.url.update("http://elsewhere.test/")',
        'request.url = "http://elsewhere.test/"',
    ],
)
def test_a_host_its_own_script_may_change_is_unknown(pre: str) -> None:
    found = print_of(pre=pre)
    assert (found.host, found.cookie_reads) == (None, {ANY})


def test_a_host_from_a_variable_a_script_writes_is_unknown() -> None:
    url = "http://{{host}}/x"
    assert print_of(url=url.replace("{{host}}", HOST)).host == HOST
    events = [{"listen": "test", "script": {"exec": ['pm.environment.set("host", "b.test")']}}]
    raw = {"name": "i", "request": {"url": url}, "event": events}
    (item,) = load_collection({"info": {"name": "c"}, "item": [raw]}).items()
    assert footprint(item, lambda text: text.replace("{{host}}", HOST), {"host"}).host is None


@pytest.mark.parametrize(
    ("host", "scope"),
    [
        ("api.example.com", "example.com"),
        ("EXAMPLE.com.", "example.com"),
        ("localhost", "localhost"),
        ("127.0.0.1", "127.0.0.1"),
        ("[::1]", "::1"),
        (None, ANY),
    ],
)
def test_cookie_scopes(host: str | None, scope: str) -> None:
    assert cookie_scope(host) == scope
