"""The network-namespace test bed isolates what it should and leaves nothing behind."""

from __future__ import annotations

import json
import os
import select
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import redis

from tests.netns import (
    LOCK_PATH,
    REPO_ROOT,
    NetnsBed,
    NetnsBedError,
    netns_unavailable_reason,
    skip_or_fail,
)

pytest_plugins = ("tests.netns",)
pytestmark = pytest.mark.netns

SERVICE_PORT = 8080
CLOSED_PORT = 9  # nothing listens there: a refused connection proves a packet came back
PROBE_TIMEOUT_SECONDS = 1.0  # a "timeout" outcome would show that packets went unanswered
FAST_FAILURE_SECONDS = 3.0  # probe process start-up included; no route fails at once

# A bed built in a child process that is then killed, leaving everything behind.
CRASHING_BED = """
import json, time
from tests.netns import NetnsBed
bed = NetnsBed()
bed.build()
bed.start_service("a")
print(json.dumps({"namespaces": [s.namespace for s in bed.subnets.values()],
                  "devices": [s.root_device for s in bed.subnets.values()],
                  "redis_pid": bed.redis_pid, "temp_dir": str(bed.temp_dir)}), flush=True)
time.sleep(60)
"""


def ip_json(*args: str) -> list[dict[str, Any]]:
    out = subprocess.run(["ip", "-j", *args], capture_output=True, text=True, check=True).stdout
    return list(json.loads(out)) if out.strip() else []


def namespaces_on_host() -> set[str]:
    return {entry["name"] for entry in ip_json("netns", "list")}


def links_on_host() -> set[str]:
    return {link["ifname"] for link in ip_json("link", "show")}


def range_addresses_on_host() -> list[str]:
    return [
        addr["local"]
        for link in ip_json("-4", "addr", "show")
        for addr in link.get("addr_info", [])
        if addr["local"].startswith(("198.18.", "198.19."))
    ]


def process_alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def assert_nothing_left(namespaces: list[str], devices: list[str]) -> None:
    assert not set(namespaces) & namespaces_on_host()
    assert not set(devices) & links_on_host()
    assert range_addresses_on_host() == []
    assert ip_json("-4", "route", "show", "table", "all", "root", "198.18.0.0/15") == []


def timed_probe(bed: NetnsBed, name: str | None, host: str, port: int) -> tuple[str, float]:
    started = time.monotonic()
    outcome = bed.probe(name, host, port, timeout=PROBE_TIMEOUT_SECONDS).outcome
    return outcome, time.monotonic() - started


# -- without a bed ---------------------------------------------------------------------------


def test_skip_outside_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="needs root"):
        skip_or_fail("needs root")


def test_fail_instead_of_skip_in_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="needs root"):
        skip_or_fail("needs root")


def test_unavailable_without_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    assert netns_unavailable_reason() == "building network namespaces needs root"


def test_unavailable_without_ip_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    monkeypatch.setattr(shutil, "which", lambda *args, **kwargs: None)
    assert "iproute2" in str(netns_unavailable_reason())


@pytest.mark.parametrize("names", [(), ("a", "a"), ("a", "toolong"), ("A",), ("a-b",)])
def test_bad_namespace_names_are_rejected(names: tuple[str, ...]) -> None:
    with pytest.raises(NetnsBedError, match="name"):
        NetnsBed(names)


# -- topology -------------------------------------------------------------------------------


def test_namespaces_have_only_their_veth_route(netns_bed: NetnsBed) -> None:
    for name, subnet in netns_bed.subnets.items():
        routes = json.loads(netns_bed.run(name, ["ip", "-j", "-4", "route", "show"]).stdout)
        assert [(r["dst"], r["dev"]) for r in routes] == [
            (f"{subnet.root_address.rsplit('.', 1)[0]}.0/24", subnet.namespace_device)
        ]
        assert netns_bed.run(name, ["ip", "-j", "route", "show", "default"]).stdout.strip() in (
            "",
            "[]",
        )


def test_route_check_accepts_the_bed_veth(netns_bed: NetnsBed) -> None:
    device = netns_bed.subnet("a").root_device
    route = netns_bed.check_route(netns_bed.veth_namespace_address("a"), device)
    assert route["dev"] == device


def test_route_check_rejects_other_devices_and_unrouted_addresses(netns_bed: NetnsBed) -> None:
    with pytest.raises(NetnsBedError, match="would not leave through"):
        netns_bed.check_route("198.18.1.2", netns_bed.subnet("b").root_device)
    with pytest.raises(NetnsBedError, match="no route"):
        netns_bed.check_route(netns_bed.service_address("a"), netns_bed.subnet("a").root_device)


def test_service_answers_only_inside_its_namespace(netns_bed: NetnsBed) -> None:
    url = netns_bed.start_service("a", SERVICE_PORT)
    host = netns_bed.service_address("a")
    assert url == f"http://{host}:{SERVICE_PORT}"

    answer = netns_bed.probe("a", host, SERVICE_PORT, kind="http")
    assert answer.http_status == 200
    assert '"method": "GET"' in answer.reply

    assert timed_probe(netns_bed, "b", host, SERVICE_PORT)[0] == "ENETUNREACH"
    outcome, elapsed = timed_probe(netns_bed, None, host, SERVICE_PORT)
    assert outcome == "EHOSTUNREACH"
    assert elapsed < FAST_FAILURE_SECONDS


def test_services_are_symmetric(netns_bed: NetnsBed) -> None:
    netns_bed.start_service("b", SERVICE_PORT)
    host = netns_bed.service_address("b")
    assert netns_bed.probe("b", host, SERVICE_PORT, kind="http").http_status == 200
    assert timed_probe(netns_bed, "a", host, SERVICE_PORT)[0] == "ENETUNREACH"


def test_namespace_cannot_reach_the_other_subnet(netns_bed: NetnsBed) -> None:
    for address in (netns_bed.veth_root_address("b"), netns_bed.veth_namespace_address("b")):
        outcome, elapsed = timed_probe(netns_bed, "a", address, netns_bed.redis_port)
        assert outcome == "ENETUNREACH"
        assert elapsed < FAST_FAILURE_SECONDS


def test_root_reaches_the_namespace_end_of_each_veth(netns_bed: NetnsBed) -> None:
    for name in netns_bed.subnets:
        address = netns_bed.veth_namespace_address(name)
        assert netns_bed.probe(None, address, CLOSED_PORT).outcome == "ECONNREFUSED"


def test_guard_route_keeps_the_rest_of_the_range_local(netns_bed: NetnsBed) -> None:
    outcome, elapsed = timed_probe(netns_bed, None, "198.18.200.1", SERVICE_PORT)
    assert outcome == "EHOSTUNREACH"
    assert elapsed < FAST_FAILURE_SECONDS


# -- redis ----------------------------------------------------------------------------------


def test_redis_answers_from_each_namespace(netns_bed: NetnsBed) -> None:
    for name in netns_bed.subnets:
        probe = netns_bed.probe(name, netns_bed.veth_root_address(name), netns_bed.redis_port,
                                kind="redis")  # fmt: skip
        assert probe.reply == "+PONG\r\n"


def test_redis_is_one_server_for_root_and_namespaces(netns_bed: NetnsBed) -> None:
    script = "import redis, sys; redis.Redis.from_url(sys.argv[1]).set('written-in', sys.argv[2])"
    for name in netns_bed.subnets:
        netns_bed.run(name, [sys.executable, "-c", script, netns_bed.redis_url_for(name), name])
        client = redis.Redis.from_url(netns_bed.redis_url_root)
        try:
            assert client.get("written-in") == name.encode()
        finally:
            client.close()


def test_networks_file_names_each_service_network(netns_bed: NetnsBed) -> None:
    assert netns_bed.networks_file_content() == {
        "default": "default",
        "networks": {"a": ["198.18.11.0/24"], "b": ["198.18.12.0/24"]},
    }


# -- lifecycle (each test leaves the fixture's bed built again) ------------------------------


def test_teardown_leaves_nothing_and_a_second_build_works(netns_bed: NetnsBed) -> None:
    sleeper = netns_bed.popen("a", ["sleep", "30"])
    netns_bed.start_service("a", SERVICE_PORT)
    redis_pid, temp_dir = netns_bed.redis_pid, netns_bed.temp_dir
    namespaces = [s.namespace for s in netns_bed.subnets.values()]
    devices = [s.root_device for s in netns_bed.subnets.values()]
    try:
        netns_bed.teardown()
        netns_bed.teardown()  # idempotent

        assert sleeper.poll() is not None
        assert not process_alive(redis_pid)
        assert not temp_dir.exists()
        assert not LOCK_PATH.exists()
        assert_nothing_left(namespaces, devices)
    finally:
        netns_bed.build()
    assert set(namespaces) <= namespaces_on_host()
    url = netns_bed.start_service("a", SERVICE_PORT)
    assert netns_bed.probe("a", url.split("//")[1].split(":")[0], SERVICE_PORT, kind="http").ok


def read_line(stream: Any, timeout: float) -> str:
    ready, _, _ = select.select([stream], [], [], timeout)
    if not ready:
        raise AssertionError(f"no output within {timeout} s")
    return str(stream.readline())


def test_build_removes_leftovers_of_a_killed_bed(netns_bed: NetnsBed) -> None:
    netns_bed.teardown()
    child = subprocess.Popen(
        [sys.executable, "-c", CRASHING_BED],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        left = json.loads(read_line(child.stdout, timeout=30))
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=10)
        assert set(left["namespaces"]) <= namespaces_on_host()
        assert process_alive(left["redis_pid"])
    finally:
        if child.poll() is None:
            os.kill(child.pid, signal.SIGKILL)
            child.wait(timeout=10)
        netns_bed.build()

    assert not set(left["namespaces"]) & namespaces_on_host()
    assert not set(left["devices"]) & links_on_host()
    assert not process_alive(left["redis_pid"])
    assert not Path(left["temp_dir"]).exists()
    assert netns_bed.probe(None, "127.0.0.1", netns_bed.redis_port, kind="redis").ok
