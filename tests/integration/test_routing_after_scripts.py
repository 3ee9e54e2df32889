"""A host set by a request's own pre-request script decides the request's network.

The step is routed before it runs by the host its URL names; when its
pre-request script moves the request to a host another network reaches, the
request is sent from that network, with the script's effects kept and the
script run once.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from celery import Celery

from tasks.dispatch import RunRequest
from tests.echo_server import serve
from tests.integration.conftest import in_process_worker
from tests.integration.test_distributed import (
    collection,
    environment,
    item,
    run_and_wait,
)
from worker.app import create_app
from worker.settings import Settings

pytestmark = pytest.mark.integration

MOVE = (
    'pm.test("pre-request ran", () => {});\n'
    'pm.environment.set("moved", "yes");\n'
    'pm.request.url = pm.environment.get("baseUrl") + "/get?moved=1";'
)
CHECK = (
    'pm.test("sent to the moved host", () => '
    'pm.expect(pm.response.json().args.moved).to.equal("1"));\n'
    'pm.test("script state kept", () => pm.expect(pm.environment.get("moved")).to.equal("yes"));'
)


@pytest.fixture()
def base_url() -> Iterator[str]:
    with serve() as url:
        yield url


@pytest.fixture()
def loopback_network(
    settings: Settings, app: Celery, tmp_path: Path
) -> Iterator[tuple[Celery, Settings]]:
    """An app whose networks file sends 127.0.0.1 to its own network (app cleans the keys)."""
    networks = tmp_path / "networks.yaml"
    name = f"lo{settings.default_network}"
    networks.write_text(
        yaml.safe_dump({"default": settings.default_network, "networks": {name: ["127.0.0.1/32"]}})
    )
    routed = dataclasses.replace(settings, networks_file=networks)
    yield create_app(routed), routed


def test_host_set_in_pre_request_script_routes_the_request(
    loopback_network: tuple[Celery, Settings], base_url: str
) -> None:
    app, settings = loopback_network
    moved = item("moved", "GET", "http://unrouted.invalid/get?moved=0", tests=CHECK, pre=MOVE)
    stays = item("stays", "GET", "{{baseUrl}}/get", tests='pm.test("ok", () => {});')
    queues = [
        settings.queue_for(settings.default_network),
        settings.queue_for(f"lo{settings.default_network}"),
    ]
    with in_process_worker(app, queues):
        report = run_and_wait(app, RunRequest(collection(moved, stays), environment(base_url)))
    executions = report["run"]["executions"]
    by_name = {e["item_name"]: e for e in executions}
    assert [(a["name"], a["passed"]) for a in by_name["moved"]["assertions"]] == [
        ("pre-request ran", True),
        ("sent to the moved host", True),
        ("script state kept", True),
    ]
    assert by_name["moved"]["network"] == f"lo{settings.default_network}"
    assert by_name["moved"]["attempt"] == 1
    assert by_name["moved"]["prerequest_scripts"] == 1
    assert by_name["stays"]["network"] == f"lo{settings.default_network}"
    assert len(executions) == 2


def test_pre_request_script_that_keeps_the_host_is_not_handed_over(
    loopback_network: tuple[Celery, Settings], base_url: str
) -> None:
    app, settings = loopback_network
    unrouted = item(
        "unrouted",
        "GET",
        "http://127.0.0.2:1/get",
        pre='pm.environment.set("seen", "1");',
        tests='pm.test("never sent", () => {});',
    )
    queues = [settings.queue_for(settings.default_network)]
    with in_process_worker(app, queues):
        report = run_and_wait(app, RunRequest(collection(unrouted), environment(base_url)))
    (execution,) = report["run"]["executions"]
    assert execution["network"] == settings.default_network
    assert execution["errors"][0]["kind"] == "request"  # nothing listens there


def test_a_host_unknown_until_its_script_runs_needs_no_default_worker(
    loopback_network: tuple[Celery, Settings], base_url: str
) -> None:
    """Subnet workers and the control queue only: nothing consumes the default network."""
    app, settings = loopback_network
    unknown = item(
        "unknown host",
        "GET",
        "{{target}}/get?moved=variable",
        pre='pm.variables.set("target", pm.environment.get("baseUrl"));',
        tests=CHECK.split("\n")[0].replace('"1"', '"variable"'),
    )
    queues = [settings.queue_for(f"lo{settings.default_network}"), settings.control_queue]
    with in_process_worker(app, queues):
        report = run_and_wait(app, RunRequest(collection(unknown), environment(base_url)))
    (execution,) = report["run"]["executions"]
    assert [(a["name"], a["passed"]) for a in execution["assertions"]] == [
        ("sent to the moved host", True)
    ]
    assert execution["network"] == f"lo{settings.default_network}"
