"""Hostile scripts and the collections that carry them, for the sandbox's isolation tests.

An *attacker* collection plants every trick a script can leave in a shared
context (replaced JSON functions, an Object.prototype setter, a replaced
String.prototype.trim, a global, timers left behind); a *victim* collection
handles a secret-type variable in each trapped way; the attacker's next run
looks for what it caught and checks that it starts from a clean context.
"""

from __future__ import annotations

import uuid
from typing import Any

JSON = dict[str, Any]
SECRET = "tok-5ecret-isolation-7f3a"

PLANT = """
var leak = [];
pmLeak = leak;
var parse = JSON.parse, stringify = JSON.stringify;
try { JSON.parse = function (text) { leak.push(String(text)); return parse.call(JSON, text); }; }
catch (e) { console.log('JSON.parse refused: ' + e.message); }
try { JSON.stringify = function (v) { var t = stringify.call(JSON, v); leak.push(t); return t; }; }
catch (e) { console.log('JSON.stringify refused: ' + e.message); }
Object.defineProperty(Object.prototype, 'token', {
    configurable: true,
    get: function () { return this.__token; },
    set: function (value) {
        leak.push(String(value));
        Object.defineProperty(this, '__token', { value: value, writable: true });
    }
});
var trim = String.prototype.trim;
try { String.prototype.trim = function () { leak.push(String(this)); return trim.call(this); }; }
catch (e) { console.log('trim refused: ' + e.message); }
setTimeout(function () { leak.push('late timer ran'); }, 400);
pm.test('planted', function () {});
"""

VICTIM = """
var token = pm.environment.get('token');
var holder = {}; holder.token = token;
JSON.parse(JSON.stringify({ token: token }));
token.trim();
var echoed = pm.response.json();
pm.test('victim ran', function () { pm.expect(token.length).to.be.above(3); });
"""

REVEAL = """
var found = [];
if (typeof pmLeak !== 'undefined') { found = found.concat(pmLeak); }
console.log('found: ' + JSON.stringify(found));
pm.environment.set('found', JSON.stringify(found));
pm.test('clean: no global left', function () { pm.expect(typeof pmLeak).to.equal('undefined'); });
pm.test('clean: no Object.prototype setter', function () {
    pm.expect(Object.getOwnPropertyDescriptor(Object.prototype, 'token')).to.equal(undefined); });
pm.test('clean: trim is the sandbox one', function () {
    pm.expect(String(String.prototype.trim)).to.not.include('leak'); });
pm.test('clean: JSON.parse is the sandbox one', function () {
    pm.expect(String(JSON.parse)).to.not.include('leak'); });
"""


def collection(name: str, url: str, tests: str, *, auth_token: bool = False) -> JSON:
    """A one-request collection whose request goes to ``url`` with ``tests`` as its test script."""
    request: JSON = {"method": "GET", "url": url}
    if auth_token:
        request["auth"] = {
            "type": "bearer",
            "bearer": [{"key": "token", "value": "{{token}}", "type": "string"}],
        }
    return {
        "info": {"_postman_id": uuid.uuid4().hex, "name": name},
        "item": [
            {
                "id": f"{name}-1",
                "name": f"{name} request",
                "request": request,
                "event": [{"listen": "test", "script": {"exec": tests.split("\n")}}],
            }
        ],
    }


def within_run_collection(url: str) -> JSON:
    """Two requests: the first shares helpers the way Postman users do, the second uses them."""
    share = "Object.prototype.utils = { greet: function () { return 'hi'; } }; shared = 41;"
    use = (
        "pm.test('helpers shared', function () { pm.expect(({}).utils.greet()).to.equal('hi'); });"
        "pm.test('global shared', function () { pm.expect(shared + 1).to.equal(42); });"
    )
    first = collection("within", url, share)["item"][0]
    second = collection("within", url, use)["item"][0]
    second["id"] = "within-2"
    return {"info": {"_postman_id": uuid.uuid4().hex, "name": "within"}, "item": [first, second]}


def secret_environment(base_url: str) -> list[JSON]:
    return [
        {"key": "baseUrl", "value": base_url},
        {"key": "token", "value": SECRET, "type": "secret"},
    ]
