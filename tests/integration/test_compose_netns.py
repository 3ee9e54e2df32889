"""docker-compose.yml's topology run for real, in network namespaces.

Each service runs the command the compose file gives it, with its
environment, in a namespace standing for its networks: ``worker-a`` and
``target-a`` in namespace "a" (subnet-a), ``worker-b`` and ``target-b`` in
"b", the scheduler and the API in the root namespace (backend). The demo
targets are reached by their service names, as in Compose: each namespace
gets a hosts file (``/etc/netns/<ns>/hosts``, which ``ip netns exec`` puts
over ``/etc/hosts``) naming only its own target. Differences from Compose,
forced by the bed: Redis is the bed's (no password), file paths inside the
containers map to the repository's files, and the API's port is a free one.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import requests

from store import Keys, RunStore
from tests.integration.conftest import ROOT
from tests.netns import NetnsBed
from tests.netns_support import free_port, wait_until
from tests.unit.compose_helpers import compose, mounted_file

pytest_plugins = ("tests.netns",)
pytestmark = [pytest.mark.integration, pytest.mark.netns]
API_KEY = "compose-netns-key"
ENVIRON = {
    "REDIS_PASSWORD": "unused",
    "PMRUNNER_API_KEY": API_KEY,
    "PMRUNNER_SECRET_KEY": "compose-netns-sealing-key",
    "FLOWER_BASIC_AUTH": "a:b",
}
NAMESPACE_OF = {"worker-a": "a", "target-a": "a", "worker-b": "b", "target-b": "b"}
ROOT_SERVICES = ("scheduler", "api")
RUN_TIMEOUT_SECONDS = 60


@pytest.fixture()
def hosts_files(netns_bed: NetnsBed) -> Iterator[None]:
    """``target-a`` resolves in namespace "a" only, ``target-b`` in "b" only."""
    made = []
    for name in ("a", "b"):
        folder = Path("/etc/netns") / netns_bed.namespace(name)
        folder.mkdir(parents=True, exist_ok=True)
        address = netns_bed.service_address(name)
        (folder / "hosts").write_text(f"127.0.0.1 localhost\n{address} target-{name}\n")
        made.append(folder)
    try:
        yield
    finally:
        for folder in made:
            shutil.rmtree(folder, ignore_errors=True)
        with contextlib.suppress(OSError):
            Path("/etc/netns").rmdir()  # only when empty: other namespaces may use it


def local_command(command: list[str], data_dir: Path, api_port: int) -> list[str]:
    """The service's command, run by this interpreter, with container paths made local."""
    program, *args = command
    args = [a.replace("/var/lib/pmrunner", str(data_dir)) for a in args]
    if "api" in args and "--port" in args:
        args[args.index("--port") + 1] = str(api_port)
    module = ["-m", "celery"] if program == "celery" else ["-m", "pmrunner.cli"]
    return [sys.executable, *module, *args]


def local_env(service: dict[str, Any], redis_url: str, data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PMRUNNER_")}
    for key, value in (service.get("environment") or {}).items():
        value = str(value)
        env[key] = (
            str(mounted_file(service, value)) if value.startswith("/etc/pmrunner/") else value
        )
    if "PMRUNNER_REDIS_URL" in env:
        env["PMRUNNER_REDIS_URL"] = redis_url
    env["PMRUNNER_DATA_DIR"] = str(data_dir)
    return env


def start_topology(bed: NetnsBed, tmp_path: Path, api_port: int) -> None:
    services = compose(ENVIRON)["services"]
    for name in (*NAMESPACE_OF, *ROOT_SERVICES):
        service = services[name]
        namespace = NAMESPACE_OF.get(name)
        redis_url = bed.redis_url_for(namespace) if namespace else bed.redis_url_root
        data_dir = tmp_path / name
        data_dir.mkdir()
        argv = local_command(service["command"], data_dir, api_port)
        env = local_env(service, redis_url, data_dir)
        log = (tmp_path / f"{name}.log").open("wb")
        options: dict[str, Any] = {"cwd": ROOT, "env": env, "stdout": log, "stderr": log}
        if namespace:
            bed.popen(namespace, argv, **options)
        else:
            process = subprocess.Popen(argv, start_new_session=True, **options)
            bed._processes.append(process)  # stopped (whole group) with the bed's own


def test_compose_topology_runs_each_subnets_requests_on_its_own_worker(
    netns_bed: NetnsBed, hosts_files: None, tmp_path: Path
) -> None:
    api_port = free_port()
    start_topology(netns_bed, tmp_path, api_port)
    store = RunStore(redis.Redis.from_url(netns_bed.redis_url_root), Keys("pmrunner:"))

    def finished_run() -> bool:
        return any(run["status"] == "finished" for run in store.list("two-subnets").runs)

    try:
        wait_until(finished_run, RUN_TIMEOUT_SECONDS, "a finished run of the two-subnet monitor")
    except Exception:
        logs = {p.name: p.read_text(errors="replace")[-1500:] for p in tmp_path.glob("*.log")}
        raise AssertionError(f"no finished run; logs: {logs}") from None
    run_id = next(r["id"] for r in store.list("two-subnets").runs if r["status"] == "finished")
    report = store.get(run_id)
    assert report is not None
    where = {e["item_name"]: (e["worker"], e["network"]) for e in report["run"]["executions"]}
    assert where["Shop in subnet a"][0].startswith("worker-a@")
    assert where["Shop in subnet b"][0].startswith("worker-b@")
    assert where["Products in subnet b"][0].startswith("worker-b@")
    assert {network for _, network in where.values()} == {"a", "b"}

    # The API in the backend namespace serves the same run.
    answer = requests.get(
        f"http://127.0.0.1:{api_port}/collections/two-subnets/runs",
        headers={"x-api-key": API_KEY},
        timeout=10,
    )
    assert answer.status_code == 200
    assert run_id in {run["id"] for run in answer.json()["runs"]}

    # Each subnet's target is out of the other subnet's reach.
    port = 8000
    assert netns_bed.probe("a", netns_bed.service_address("a"), port).ok
    assert not netns_bed.probe("a", netns_bed.service_address("b"), port).ok
    assert not netns_bed.probe("b", netns_bed.service_address("a"), port).ok
