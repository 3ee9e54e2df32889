"""The egress policy in distributed runs: the worker's rules and its network's section.

Denied addresses are loopback addresses configured as denied; listeners on
them prove that nothing connected.
"""

from __future__ import annotations

import dataclasses
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from celery import Celery

from tasks.dispatch import RunRequest
from tests.integration.conftest import in_process_worker
from tests.integration.test_distributed import base_url, collection, environment, item, run_and_wait
from worker.settings import Settings

pytestmark = pytest.mark.integration
__all__ = ["base_url"]  # the fixture, found by pytest under its name

BY_RUNNER = "127.0.0.3"  # denied by the runner's settings
BY_NETWORK = "127.0.0.4"  # denied by the network's section of the networks file


@pytest.fixture()
def settings(settings: Settings, tmp_path: Path) -> Settings:
    networks = tmp_path / "networks.yaml"
    section = {settings.default_network: {"deny": [BY_NETWORK]}}
    networks.write_text(yaml.safe_dump({"networks": {}, "egress": section}), encoding="utf-8")
    return dataclasses.replace(settings, networks_file=networks, egress_deny=(BY_RUNNER,))


@pytest.fixture()
def listeners() -> Iterator[dict[str, socket.socket]]:
    opened = {address: socket.create_server((address, 0)) for address in (BY_RUNNER, BY_NETWORK)}
    for listener in opened.values():
        listener.setblocking(False)
    yield opened
    for listener in opened.values():
        listener.close()


def _url(listener: socket.socket) -> str:
    address, port = listener.getsockname()[:2]
    return f"http://{address}:{port}/x"


def _connections(listener: socket.socket) -> int:
    try:
        listener.accept()[0].close()
    except BlockingIOError:
        return 0
    return 1 + _connections(listener)


def test_workers_enforce_the_runner_and_network_rules(
    app: Celery, settings: Settings, base_url: str, listeners: dict[str, socket.socket]
) -> None:
    runner_url, network_url = _url(listeners[BY_RUNNER]), _url(listeners[BY_NETWORK])
    send = f"""pm.sendRequest("{runner_url}", (err) => {{
        pm.test("sendRequest refused", () => pm.expect(err.message).to.equal(
            "blocked by egress policy: deny {BY_RUNNER} (PMRUNNER_EGRESS_DENY)"));
    }});"""
    items = [
        item("allowed", "GET", "{{baseUrl}}/get", tests=send),
        item("network rule", "GET", network_url),
        item("redirect", "GET", "{{baseUrl}}/redirect-to?url=" + runner_url),
    ]
    with in_process_worker(app, [settings.queue_for(settings.default_network)]):
        report = run_and_wait(app, RunRequest(collection(*items), environment(base_url)))
    executions = {e["item_name"]: e for e in report["run"]["executions"]}
    assert [(a["name"], a["passed"]) for a in executions["allowed"]["assertions"]] == [
        ("sendRequest refused", True)
    ]
    assert [e["message"] for e in executions["network rule"]["errors"]] == [
        f"blocked by egress policy: deny {BY_NETWORK} (network {settings.default_network})"
    ]
    assert [e["message"] for e in executions["redirect"]["errors"]] == [
        f"blocked by egress policy: deny {BY_RUNNER} (PMRUNNER_EGRESS_DENY)"
    ]
    assert [_connections(listener) for listener in listeners.values()] == [0, 0]
