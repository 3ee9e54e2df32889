"""The run planner: parallel where independent, in sequence where dependent."""

from __future__ import annotations

from typing import Any

from runtime.loading import load_collection
from scheduler.planner import plan_run

JSON = dict[str, Any]


def item(
    name: str, url: str, method: str = "GET", tests: str = "", pre: str = "", **request: Any
) -> JSON:
    events = []
    if pre:
        events.append({"listen": "prerequest", "script": {"exec": [pre]}})
    if tests:
        events.append({"listen": "test", "script": {"exec": [tests]}})
    return {
        "id": name,
        "name": name,
        "request": {"method": method, "url": url, **request},
        "event": events,
    }


def plan(*items: JSON, iterations: int = 1, **collection: Any) -> list[list[tuple[str, int]]]:
    parsed = load_collection({"info": {"name": "c"}, "item": list(items), **collection})
    result = plan_run(
        list(parsed.items()),
        iterations,
        lambda text: text.replace("{{baseUrl}}", "http://api.local"),
    )
    return [[(s.item_id, s.iteration) for s in branch.steps] for branch in result.branches]


def test_gets_to_hosts_that_share_no_cookies_are_parallel() -> None:
    a, b = item("a", "{{baseUrl}}/a"), item("b", "http://other.local/b")
    assert plan(a, b) == [[("a", 0)], [("b", 0)]]


def test_gets_to_one_host_run_in_order_as_they_share_its_cookies() -> None:
    assert plan(item("a", "{{baseUrl}}/a"), item("b", "{{baseUrl}}/b")) == [[("a", 0), ("b", 0)]]


def test_cookie_scope_spans_subdomains_and_ports_but_not_sites() -> None:
    a = item("a", "http://a.example.test/x")
    b = item("b", "http://b.example.test:8080/y")
    c = item("c", "http://example.other/z")
    d = item("d", "http://127.0.0.1:1/d")
    e = item("e", "http://127.1:2/e")  # the same address, written short
    assert plan(a, b, c, d, e) == [[("a", 0), ("b", 0)], [("c", 0)], [("d", 0), ("e", 0)]]


def test_disable_cookies_takes_requests_out_of_the_jar() -> None:
    off = {"protocolProfileBehavior": {"disableCookies": True}}
    a, b = item("a", "{{baseUrl}}/a") | off, item("b", "{{baseUrl}}/b") | off
    assert plan(a, b) == [[("a", 0)], [("b", 0)]]


def test_variable_written_then_read_makes_a_sequence() -> None:
    login = item("login", "{{baseUrl}}/login", tests='pm.environment.set("token", "x")')
    use = item("use", "{{baseUrl}}/me", header=[{"key": "Authorization", "value": "{{token}}"}])
    other = item("other", "http://other.local/other")
    assert plan(login, other, use) == [[("login", 0), ("use", 0)], [("other", 0)]]


def test_script_read_counts_as_a_read() -> None:
    writer = item("w", "{{baseUrl}}/w", tests='pm.collectionVariables.set("id", 1)')
    reader = item(
        "r", "{{baseUrl}}/r", tests='pm.expect(pm.collectionVariables.get("id")).to.eql(1)'
    )
    assert plan(writer, reader) == [[("w", 0), ("r", 0)]]


def test_unsafe_method_orders_later_requests_to_the_same_host() -> None:
    create = item("create", "{{baseUrl}}/items", method="POST")
    read = item("read", "{{baseUrl}}/items")
    elsewhere = item("elsewhere", "http://other.local/x")
    assert plan(create, read, elsewhere) == [[("create", 0), ("read", 0)], [("elsewhere", 0)]]


def test_computed_variable_names_are_treated_as_touching_everything() -> None:
    writer = item("w", "{{baseUrl}}/w", tests="pm.environment.set(name, 1)")
    reader = item("r", "{{baseUrl}}/{{anything}}")
    assert plan(writer, reader) == [[("w", 0), ("r", 0)]]


def test_set_next_request_makes_one_dynamic_branch() -> None:
    loop = item("loop", "{{baseUrl}}/x", tests='pm.execution.setNextRequest("loop")')
    parsed = load_collection({"info": {"name": "c"}, "item": [loop, item("b", "{{baseUrl}}/b")]})
    result = plan_run(list(parsed.items()), 2, lambda t: t)
    assert len(result.branches) == 1 and result.branches[0].dynamic


def test_stateless_requests_run_every_iteration_in_parallel() -> None:
    cookieless = item("a", "{{baseUrl}}/a") | {"protocolProfileBehavior": {"disableCookies": True}}
    assert plan(cookieless, iterations=2) == [[("a", 0)], [("a", 1)]]


def test_a_request_with_cookies_runs_iteration_after_iteration() -> None:
    assert plan(item("a", "{{baseUrl}}/a"), iterations=2) == [[("a", 0), ("a", 1)]]


def test_stateful_branches_run_iteration_after_iteration() -> None:
    writer = item("w", "{{baseUrl}}/w", tests='pm.environment.set("t", 1)')
    reader = item("r", "{{baseUrl}}/r?t={{t}}")
    assert plan(writer, reader, iterations=2) == [[("w", 0), ("r", 0), ("w", 1), ("r", 1)]]


def test_collection_level_script_that_writes_links_everything() -> None:
    events = [{"listen": "prerequest", "script": {"exec": ['pm.variables.set("ts", Date.now())']}}]
    result = plan(
        item("a", "{{baseUrl}}/a?ts={{ts}}"), item("b", "{{baseUrl}}/b?ts={{ts}}"), event=events
    )
    assert result == [[("a", 0), ("b", 0)]]


def test_unknown_host_with_unsafe_method_is_sequential() -> None:
    post = item("post", "{{unknownHost}}/x", method="POST")
    get = item("get", "{{baseUrl}}/y")
    assert plan(post, get) == [[("post", 0), ("get", 0)]]


def test_disable_cookies_on_the_collection_covers_every_request() -> None:
    behavior = {"protocolProfileBehavior": {"disableCookies": True}}
    result = plan(item("a", "{{baseUrl}}/a"), item("b", "{{baseUrl}}/b"), **behavior)
    assert result == [[("a", 0)], [("b", 0)]]
