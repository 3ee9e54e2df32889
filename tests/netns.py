"""A network-namespace test bed: private subnets on one machine, for the multi-subnet tests.

Topology built by :class:`NetnsBed` for the names ``("a", "b")`` (index ``i`` of a
name picks its addresses; everything lives in 198.18.0.0/15 and nowhere else)::

    root namespace                               namespace pmr-<pid>-a
    pmr<pid>a0 198.18.1.1/24  <--- veth --->  pmr<pid>a1 198.18.1.2/24
                                                 lo 127.0.0.1, 198.18.11.1/32 (service)
    pmr<pid>b0 198.18.2.1/24  <--- veth --->  pmr<pid>b1 198.18.2.2/24   (namespace pmr-<pid>-b)
                                                 lo 127.0.0.1, 198.18.12.1/32 (service)
    unreachable 198.18.0.0/15 (guard: nothing in the range leaves through another device)
    redis-server on 127.0.0.1, 198.18.1.1 and 198.18.2.1 (one free port, no persistence)

Namespaces get no default route, so a process in namespace "a" reaches its own
service address and the root end of its veth, and nothing else. The root
namespace reaches 198.18.1.2 and 198.18.2.2 but not the service addresses.
Before the bed sends anything it asks ``ip route get`` whether the packet would
leave through one of the bed's own devices, and raises otherwise.

Only one bed runs on a machine at a time (the addresses are fixed): a lock file
serialises them and records what the bed started in the root namespace, so a
bed that was killed is cleaned up by the next one. Use the ``netns_bed``
fixture from a test module with ``pytest_plugins = ("tests.netns",)``, or the
class directly as a context manager. The plumbing (lock, ``ip`` wrappers, cleanup)
lives in tests/netns_support.py. (PYTEST_DONT_REWRITE: test modules import
this file before pytest loads it as a plugin.)
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import IO, Any

import pytest

from tests.netns_support import (
    ADDRESS_RANGE,
    COMMAND_TIMEOUT_SECONDS,
    LOCK_PATH,
    PREFIX,
    TEMP_DIR_PREFIX,
    BedLock,
    NetnsBedError,
    check_range_is_free,
    clean_leftovers,
    delete_guard_route,
    delete_link,
    delete_namespace,
    free_port,
    ip_binary,
    ip_json,
    netns_unavailable_reason,
    probe_command,
    process_start_time,
    redis_server_binary,
    require_route,
    route_to,
    run_ip,
    stop_process_group,
    wait_until,
)
from tests.netns_support import STOP_TIMEOUT_SECONDS as STOP_TIMEOUT_SECONDS  # re-exported

REPO_ROOT = Path(__file__).resolve().parent.parent
NAME_PATTERN = re.compile(r"^[a-z][a-z0-9]{0,3}$")  # keeps interface names within 15 characters
MAX_NAMES = 9
LOCK_TIMEOUT_SECONDS = 180.0
READY_TIMEOUT_SECONDS = 10.0


@dataclass(frozen=True)
class Probe:
    """Outcome of one connection attempt.

    ``outcome`` is ``"ok"`` (connected, and answered when a request was sent),
    ``"timeout"``, or the errno name of the failure (``"ENETUNREACH"``,
    ``"EHOSTUNREACH"``, ``"ECONNREFUSED"``, ...). ``reply`` holds what came back.
    """

    outcome: str
    reply: str = ""

    @property
    def ok(self) -> bool:
        return self.outcome == "ok"

    @property
    def http_status(self) -> int | None:
        """Status code of an HTTP reply, or None when there was none."""
        match = re.match(r"HTTP/\d\.\d (\d{3})", self.reply)
        return int(match.group(1)) if match else None


@dataclass(frozen=True)
class Subnet:
    """Names and addresses of one namespace of the bed."""

    name: str
    namespace: str
    root_device: str
    namespace_device: str
    root_address: str
    namespace_address: str
    service_address: str
    service_network: str

    @classmethod
    def for_index(cls, name: str, index: int, pid: int) -> Subnet:
        """Lay out namespace ``name``, the ``index``-th of a bed owned by process ``pid``."""
        return cls(
            name=name,
            namespace=f"{PREFIX}-{pid}-{name}",
            root_device=f"{PREFIX}{pid}{name}0",
            namespace_device=f"{PREFIX}{pid}{name}1",
            root_address=f"198.18.{index + 1}.1",
            namespace_address=f"198.18.{index + 1}.2",
            service_address=f"198.18.{index + 11}.1",
            service_network=f"198.18.{index + 11}.0/24",
        )


class NetnsBed:
    """Namespaces, veths, a Redis and per-namespace services; removed again by ``teardown``.

    Args:
        names: one short name per namespace (lowercase, at most 4 characters).
        lock_path: the lock file that serialises beds on this machine.
    """

    def __init__(self, names: Sequence[str] = ("a", "b"), *, lock_path: Path = LOCK_PATH) -> None:
        if not names or len(names) > MAX_NAMES or len(set(names)) != len(names):
            raise NetnsBedError(f"names must be 1 to {MAX_NAMES} distinct names, got {names!r}")
        for name in names:
            if not NAME_PATTERN.match(name):
                raise NetnsBedError(f"namespace name {name!r} must match {NAME_PATTERN.pattern}")
        pid = os.getpid()
        self.subnets = {name: Subnet.for_index(name, i, pid) for i, name in enumerate(names)}
        self._lock = BedLock(lock_path)
        self._temp_dir: Path | None = None
        self._redis: subprocess.Popen[bytes] | None = None
        self._redis_port: int | None = None
        self._processes: list[subprocess.Popen[Any]] = []
        self._services: dict[tuple[str, int], str] = {}
        self._log_files: list[IO[bytes]] = []

    # -- lifecycle -----------------------------------------------------------------------

    def __enter__(self) -> NetnsBed:
        self.build()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.teardown()

    @property
    def built(self) -> bool:
        return self._lock.held

    def build(self) -> None:
        """Create everything; on any failure remove what was created and re-raise."""
        if self.built:
            return
        self._lock.acquire(LOCK_TIMEOUT_SECONDS)
        try:
            clean_leftovers(self._lock.read_state())
            self._lock.write_state({"owner": os.getpid()})
            check_range_is_free()
            self._temp_dir = Path(tempfile.mkdtemp(prefix=TEMP_DIR_PREFIX))
            self._save_state()
            run_ip("route", "add", "unreachable", str(ADDRESS_RANGE))
            for subnet in self.subnets.values():
                self._build_subnet(subnet)
            self._start_redis()
        except BaseException:
            self.teardown()
            raise

    def teardown(self) -> None:
        """Stop processes, delete namespaces, links, the guard route, Redis and temp files.

        Safe to call more than once; every step runs even when an earlier one fails.
        """
        if not self.built:
            return
        errors: list[str] = []
        steps: list[Callable[[], None]] = [self._stop_processes]
        steps += [partial(delete_namespace, s.namespace) for s in self.subnets.values()]
        steps += [partial(delete_link, s.root_device) for s in self.subnets.values()]
        steps += [delete_guard_route, self._stop_redis, self._remove_temp_dir]
        for step in steps:
            try:
                step()
            except Exception as exc:  # keep going: a half-removed bed is worse than a late error
                errors.append(str(exc))
        self._lock.release()
        if errors:
            raise NetnsBedError("teardown incomplete: " + "; ".join(errors))

    def _build_subnet(self, s: Subnet) -> None:
        ns = s.namespace
        run_ip("netns", "add", ns)
        for command in (
            f"link add {s.root_device} type veth peer name {s.namespace_device} netns {ns}",
            f"addr add {s.root_address}/24 dev {s.root_device}",
            f"link set {s.root_device} up",
        ):
            run_ip(*command.split())
        for command in (
            "link set lo up",
            f"addr add {s.service_address}/32 dev lo",
            f"addr add {s.namespace_address}/24 dev {s.namespace_device}",
            f"link set {s.namespace_device} up",
        ):
            run_ip(*command.split(), namespace=ns)
        if ip_json("route", "show", "default", namespace=ns):
            raise NetnsBedError(f"namespace {ns} unexpectedly has a default route")

    def _save_state(self) -> None:
        """Record what lives in the root namespace, for the cleanup after a crash."""
        pids = [p.pid for p in ([self._redis] if self._redis else [])]
        self._lock.write_state(
            {
                "owner": os.getpid(),
                "temp_dir": str(self._temp_dir) if self._temp_dir else None,
                "root_pids": [[pid, process_start_time(pid)] for pid in pids],
            }
        )

    # -- Redis ---------------------------------------------------------------------------

    def _start_redis(self) -> None:
        assert self._temp_dir is not None
        binds = ["127.0.0.1", *(s.root_address for s in self.subnets.values())]
        port = free_port()
        log = self._log_file("redis.log")
        options = f"--port {port} --appendonly no --protected-mode no".split()
        options += ["--save", "", "--dir", str(self._temp_dir)]  # no persistence, files in temp
        argv = [redis_server_binary() or "redis-server", *options, "--bind", *binds]
        self._redis = subprocess.Popen(
            argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        self._redis_port = port
        self._save_state()
        self._wait_ready(self._redis, None, "127.0.0.1", port, "redis", "redis.log")

    def _stop_redis(self) -> None:
        if self._redis is not None:
            stop_process_group(self._redis)
        self._redis = None
        self._redis_port = None

    @property
    def redis_pid(self) -> int:
        if self._redis is None:
            raise NetnsBedError("the bed is not built")
        return self._redis.pid

    @property
    def redis_port(self) -> int:
        if self._redis_port is None:
            raise NetnsBedError("the bed is not built")
        return self._redis_port

    @property
    def redis_url_root(self) -> str:
        """Redis URL for processes in the root namespace (127.0.0.1)."""
        return f"redis://127.0.0.1:{self.redis_port}/0"

    def redis_url_for(self, name: str) -> str:
        """Redis URL for processes in namespace ``name`` (the root end of its veth)."""
        return f"redis://{self.subnet(name).root_address}:{self.redis_port}/0"

    # -- addresses -----------------------------------------------------------------------

    def subnet(self, name: str) -> Subnet:
        try:
            return self.subnets[name]
        except KeyError:
            raise NetnsBedError(f"no namespace named {name!r} in this bed") from None

    def namespace(self, name: str) -> str:
        return self.subnet(name).namespace

    def service_address(self, name: str) -> str:
        return self.subnet(name).service_address

    def veth_root_address(self, name: str) -> str:
        return self.subnet(name).root_address

    def veth_namespace_address(self, name: str) -> str:
        return self.subnet(name).namespace_address

    def networks_file_content(self) -> dict[str, Any]:
        """A routing table for the workers: each namespace's service network by name."""
        networks = {name: [s.service_network] for name, s in self.subnets.items()}
        return {"default": "default", "networks": networks}

    # -- processes -----------------------------------------------------------------------

    def popen(
        self, name: str, argv: Sequence[str], env: dict[str, str] | None = None, **kwargs: Any
    ) -> subprocess.Popen[Any]:
        """Start ``argv`` inside namespace ``name``; it is killed (whole group) at teardown.

        Args:
            name: the namespace's short name.
            argv: the command.
            env: its environment (the current one when None).
            kwargs: passed on to ``subprocess.Popen`` (a new session is always used).
        """
        if not self.built:
            raise NetnsBedError("the bed is not built")
        kwargs["start_new_session"] = True
        command = [ip_binary(), "netns", "exec", self.namespace(name), *argv]
        proc: subprocess.Popen[Any] = subprocess.Popen(command, env=env, **kwargs)
        self._processes.append(proc)
        return proc

    def run(
        self, name: str, argv: Sequence[str], *, check: bool = True, **kwargs: Any
    ) -> subprocess.CompletedProcess[str]:
        """Run a short command inside namespace ``name`` and capture its text output."""
        kwargs.setdefault("timeout", COMMAND_TIMEOUT_SECONDS)
        command = [ip_binary(), "netns", "exec", self.namespace(name), *argv]
        return subprocess.run(command, capture_output=True, text=True, check=check, **kwargs)

    def _stop_processes(self) -> None:
        for proc in self._processes:
            stop_process_group(proc)
        self._processes.clear()
        self._services.clear()
        for log in self._log_files:
            log.close()
        self._log_files.clear()

    def _log_file(self, filename: str) -> IO[bytes]:
        assert self._temp_dir is not None
        log = open(self._temp_dir / filename, "wb")  # noqa: SIM115 - closed at teardown
        self._log_files.append(log)
        return log

    @property
    def temp_dir(self) -> Path:
        """Directory of the bed's logs (``redis.log``, ``service-<name>-<port>.log``)."""
        if self._temp_dir is None:
            raise NetnsBedError("the bed is not built")
        return self._temp_dir

    def _remove_temp_dir(self) -> None:
        if self._temp_dir is not None:
            shutil.rmtree(self._temp_dir, ignore_errors=True)
        self._temp_dir = None

    # -- services ------------------------------------------------------------------------

    def start_service(self, name: str, port: int = 8080) -> str:
        """Run the echo server on the service address of namespace ``name``; return its URL.

        Returns once the server answers from inside the namespace. Starting the same
        service twice returns the running one.
        """
        if (name, port) in self._services:
            return self._services[name, port]
        host = self.service_address(name)
        log_name = f"service-{name}-{port}.log"
        argv = [sys.executable, "-m", "tests.echo_server", "--host", host, "--port", str(port)]
        proc = self.popen(
            name,
            argv,
            cwd=REPO_ROOT,
            stdout=self._log_file(log_name),
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        self._wait_ready(proc, name, host, port, "http", log_name)
        self._services[name, port] = url = f"http://{host}:{port}"
        return url

    def _wait_ready(
        self,
        proc: subprocess.Popen[Any],
        name: str | None,
        host: str,
        port: int,
        kind: str,
        log_name: str,
    ) -> None:
        """Wait until ``host:port`` answers a ``kind`` probe from ``name``, or ``proc`` exits."""

        def answered() -> bool:
            if proc.poll() is not None:
                assert self._temp_dir is not None
                log = (self._temp_dir / log_name).read_text(errors="replace")
                raise NetnsBedError(f"{kind} server on {host}:{port} exited: {log[-2000:]}")
            return self.probe(name, host, port, kind=kind).ok

        wait_until(answered, READY_TIMEOUT_SECONDS, f"{kind} server on {host}:{port}")

    # -- traffic -------------------------------------------------------------------------

    def check_route(
        self, address: str, expect_device: str, *, namespace: str | None = None
    ) -> dict[str, Any]:
        """Raise NetnsBedError unless ``ip route get address`` goes out ``expect_device``.

        Args:
            address: destination address.
            expect_device: the device the route must use (e.g. ``"lo"`` or a bed veth).
            namespace: short name of the namespace to ask in; the root namespace when None.
        Returns:
            The route, as ``ip -j route get`` describes it.
        """
        return require_route(address, expect_device, self._full_name(namespace))

    def _full_name(self, name: str | None) -> str | None:
        """The namespace called ``name`` here, or None (the root namespace) for None."""
        return self.namespace(name) if name else None

    def _ensure_contained(self, address: str, namespace: str | None) -> None:
        """Raise unless a packet to ``address`` from ``namespace`` stays inside the bed."""
        if ipaddress.ip_address(address).is_loopback:
            self.check_route(address, "lo", namespace=namespace)
            return
        if ipaddress.ip_address(address) not in ADDRESS_RANGE:
            raise NetnsBedError(f"{address} is outside {ADDRESS_RANGE}; the bed sends nowhere else")
        route = route_to(address, self._full_name(namespace))
        if route is None or route.get("type") in ("unreachable", "blackhole", "prohibit"):
            return  # the kernel refuses locally: nothing can leave
        if namespace:
            allowed = {"lo", self.subnet(namespace).namespace_device}
        else:
            allowed = {"lo", *(s.root_device for s in self.subnets.values())}
        if route.get("dev") not in allowed:
            raise NetnsBedError(
                f"traffic to {address} would leave through {route.get('dev')}, "
                f"not a device of this bed ({sorted(allowed)})"
            )

    def probe(
        self, name: str | None, host: str, port: int, *, kind: str = "tcp", timeout: float = 1.0
    ) -> Probe:
        """Try to reach ``host:port`` from namespace ``name`` (root when None).

        Args:
            name: short name of the namespace to connect from, or None for the root namespace.
            host: destination address (loopback or inside 198.18.0.0/15 only).
            port: destination port.
            kind: ``"tcp"`` (connect only), ``"redis"`` (PING) or ``"http"`` (GET /get).
            timeout: connect and read timeout in seconds.
        """
        self._ensure_contained(host, name)
        argv = probe_command(kind, host, port, timeout)
        if name is None:
            done = subprocess.run(
                argv, capture_output=True, text=True, timeout=COMMAND_TIMEOUT_SECONDS
            )
        else:
            done = self.run(name, argv, check=False)
        try:
            result = json.loads(done.stdout)
        except ValueError:
            raise NetnsBedError(f"probe of {host}:{port} failed: {done.stderr.strip()}") from None
        return Probe(outcome=str(result["outcome"]), reply=str(result["reply"]))


# -- pytest ----------------------------------------------------------------------------------


def skip_or_fail(reason: str) -> None:
    """Skip the test with ``reason``; in CI (``CI=true``) fail it instead: CI must not skip."""
    if os.environ.get("CI", "").strip().lower() in ("true", "1", "yes"):
        pytest.fail(f"netns test bed unavailable in CI: {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def netns_bed() -> Iterator[NetnsBed]:
    """A built :class:`NetnsBed` with namespaces "a" and "b", removed when the module ends."""
    reason = netns_unavailable_reason()
    if reason is not None:
        skip_or_fail(reason)
    bed = NetnsBed()
    try:
        bed.build()
        yield bed
    finally:
        bed.teardown()
