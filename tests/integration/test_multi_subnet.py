"""The multi-subnet test: two private subnets, one worker in each, one run across both.

Two network namespaces (tests/netns.py) each hold an HTTP service that only
that namespace reaches. A worker runs inside each namespace and consumes its
network's queue (and the control queue, as every worker does); no worker
consumes the default network. Redis listens on both veths. One collection logs in on A,
uses the token on B, and has independent requests on both. Every request
must run on its own subnet's worker. Flower, in the root namespace, must
show both workers and the task names, with no secret in any argument.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from runtime.loading import VariableFile
from tasks.context import Services
from tasks.dispatch import RunRequest, start_run
from tasks.finalize import wait_for_report
from tests.integration.conftest import ROOT
from tests.netns import NetnsBed
from worker.app import create_app, worker_command
from worker.settings import Settings

pytest_plugins = ("tests.netns",)
pytestmark = [pytest.mark.integration, pytest.mark.netns]
SECRET = "s3cr3t-login-password"
JSON = dict[str, Any]


def item(name: str, method: str, url: str, tests: str, **request: Any) -> JSON:
    return {
        "name": name,
        "request": {"method": method, "url": url, **request},
        "event": [{"listen": "test", "script": {"exec": tests.split("\n")}}],
    }


def cross_subnet_collection() -> JSON:
    login = item(
        "login on A",
        "POST",
        "{{serviceA}}/post",
        'pm.environment.set("token", "tok-" + pm.response.json().json.user);\n'
        'pm.test("logged in", () => pm.response.to.have.status(200));',
        header=[{"key": "Content-Type", "value": "application/json"}],
        body={"mode": "raw", "raw": '{"user": "ada", "password": "{{password}}"}'},
    )
    use = item(
        "use token on B",
        "GET",
        "{{serviceB}}/headers",
        'pm.test("token arrived on B", () => '
        'pm.expect(pm.response.json().headers["x-token"]).to.equal("tok-ada"));',
        header=[{"key": "X-Token", "value": "{{token}}"}],
    )
    back = item(
        "back on A",
        "GET",
        "{{serviceA}}/get?after=login",
        'pm.test("A again", () => pm.response.to.be.ok);',
    )
    only_b = item(
        "independent on B",
        "GET",
        "{{serviceB}}/get?solo=1",
        'pm.test("B alone", () => pm.response.to.be.ok);',
    )
    # Out of the cookie jar, so not in sequence with the other requests to B.
    only_b["protocolProfileBehavior"] = {"disableCookies": True}
    moved = item(
        "moved to B by its script",
        "GET",
        "{{serviceA}}/get?moved=0",
        'pm.test("sent from B", () => pm.expect(pm.response.json().args.moved).to.equal("1"));',
    )
    # Routed to A by its URL; its own pre-request script moves it to B.
    moved["event"].insert(
        0,
        {
            "listen": "prerequest",
            "script": {
                "exec": ['pm.request.url = pm.environment.get("serviceB") + "/get?moved=1";']
            },
        },
    )
    return {
        "info": {"_postman_id": f"subnets-{uuid.uuid4().hex[:6]}", "name": "across subnets"},
        "item": [login, use, back, only_b, moved],
    }


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def worker_in(
    bed: NetnsBed, name: str, settings: Settings, networks: Path
) -> subprocess.Popen[Any]:
    env = {
        **os.environ,
        **settings.to_env(),
        "PMRUNNER_REDIS_URL": bed.redis_url_for(name),
        "PMRUNNER_NETWORK": name,
        "PYTHONPATH": str(ROOT),
    }
    argv = worker_command([f"net.{name}"], concurrency=4, name=f"net-{name}@%h", events=True)
    log = open(bed.temp_dir / f"worker-{name}.log", "wb")  # noqa: SIM115 - closed by the bed's teardown
    return bed.popen(name, argv, env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)


@pytest.fixture()
def subnets(netns_bed: NetnsBed, tmp_path: Path) -> Iterator[tuple[NetnsBed, Settings, Path]]:
    tag = uuid.uuid4().hex[:8]
    networks = tmp_path / "networks.yaml"
    networks.write_text(yaml.safe_dump(netns_bed.networks_file_content()))
    settings = Settings(
        redis_url=netns_bed.redis_url_root,
        key_prefix=f"pmrtest:{tag}:",
        default_network=f"d{tag}",
        networks_file=networks,
        run_deadline=60,
    )
    yield netns_bed, settings, networks


def wait_for_workers(app: Any, names: list[str], timeout: float = 40) -> None:
    deadline = time.monotonic() + timeout
    seen: set[str] = set()
    while time.monotonic() < deadline:
        for reply in app.control.ping(timeout=0.5) or []:
            seen.update(reply)
        if all(any(n.startswith(f"{name}@") for n in seen) for name in names):
            return
    raise AssertionError(f"workers {names} did not answer; saw {sorted(seen)}")


def start_flower(settings: Settings, port: int) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "worker",
            "flower",
            f"--port={port}",
            "--address=127.0.0.1",
        ],
        cwd=ROOT,
        env={**os.environ, **settings.to_env(), "FLOWER_UNAUTHENTICATED_API": "true"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def flower_json(port: int, path: str) -> Any:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as answer:
        return json.loads(answer.read())


def test_each_request_runs_on_its_own_subnets_worker(
    subnets: tuple[NetnsBed, Settings, Path],
) -> None:
    bed, settings, networks = subnets
    service_a, service_b = bed.start_service("a"), bed.start_service("b")
    for name in ("a", "b"):
        subnet = bed.subnet(name)
        bed.check_route(subnet.namespace_address, subnet.root_device)
        bed.check_route(subnet.root_address, subnet.namespace_device, namespace=name)
        bed.check_route(subnet.service_address, "lo", namespace=name)
    app = create_app(settings)
    flower_port = free_port()
    flower = start_flower(settings, flower_port)
    try:
        worker_in(bed, "a", settings, networks)
        worker_in(bed, "b", settings, networks)
        wait_for_workers(app, ["net-a", "net-b"])
        environment = VariableFile(
            "subnets",
            "env-subnets",
            [
                {"key": "serviceA", "value": service_a},
                {"key": "serviceB", "value": service_b},
                {"key": "password", "value": SECRET, "type": "secret"},
            ],
        )
        # Nothing consumes the default network: the subnet workers alone run
        # the requests and, on the control queue they also consume, report the run.
        started = time.monotonic()
        run_id = start_run(app, RunRequest(cross_subnet_collection(), environment))
        report = wait_for_report(Services.of(app), run_id, 90)
        assert report is not None, "the run did not report"
        assert time.monotonic() - started < 30, "reported at the deadline, not by the workers"
        executions = report["run"]["executions"]
        assert [(e["item_name"], [a["passed"] for a in e["assertions"]]) for e in executions] == [
            ("login on A", [True]),
            ("use token on B", [True]),
            ("back on A", [True]),
            ("independent on B", [True]),
            ("moved to B by its script", [True]),
        ], json.dumps(executions, indent=1)[:3000]
        where = {e["item_name"]: (e["network"], e["worker"].split("@")[0]) for e in executions}
        assert where == {
            "login on A": ("a", "net-a"),
            "use token on B": ("b", "net-b"),
            "back on A": ("a", "net-a"),
            "independent on B": ("b", "net-b"),
            "moved to B by its script": ("b", "net-b"),
        }
        assert SECRET not in json.dumps(report)
        _check_flower(flower_port, run_id)
    finally:
        os.killpg(flower.pid, 15)
        flower.wait(20)
        # This process subscribed to result channels on the bed's Redis, which
        # goes away with the bed: close them now rather than let them retry.
        with contextlib.suppress(Exception):
            app.backend.result_consumer.stop()


def _check_flower(port: int, run_id: str) -> None:
    deadline = time.monotonic() + 30
    tasks: dict[str, Any] = {}
    workers: dict[str, Any] = {}
    while time.monotonic() < deadline:
        try:
            workers = flower_json(port, "/api/workers?refresh=1")
            tasks = flower_json(port, "/api/tasks")
        except OSError:
            time.sleep(0.5)
            continue
        steps = [t for t in tasks.values() if t.get("name") == "pmrunner.execute_request"]
        if len(steps) >= 2 and {"net-a", "net-b"} <= {w.split("@")[0] for w in workers}:
            break
        time.sleep(0.5)
    assert {"net-a", "net-b"} <= {w.split("@")[0] for w in workers}, sorted(workers)
    # A step hands its branch on by replacing itself, and the replacement keeps
    # the task id: Flower shows one task per branch, in the state of its last step.
    steps = [t for t in tasks.values() if t.get("name") == "pmrunner.execute_request"]
    assert len(steps) == 2, sorted({t.get("name") for t in tasks.values()})
    assert all(f"run={run_id}" in str(t.get("args")) for t in steps)
    assert {str(t.get("args")).split("item=")[-1] for t in steps} == {
        "'moved to B by its script'",
        "'independent on B'",
    }
    assert SECRET not in json.dumps(tasks) and "tok-ada" not in json.dumps(tasks)
