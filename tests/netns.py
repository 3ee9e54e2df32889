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
class directly as a context manager. (PYTEST_DONT_REWRITE: test modules import
this file before pytest loads it as a plugin.)
"""

from __future__ import annotations

import contextlib
import fcntl
import ipaddress
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import IO, Any

import pytest

ADDRESS_RANGE = ipaddress.ip_network("198.18.0.0/15")
REPO_ROOT = Path(__file__).resolve().parent.parent
LOCK_PATH = Path(tempfile.gettempdir()) / "pmrunner-netns.lock"
TEMP_DIR_PREFIX = "pmr-netns-"
PREFIX = "pmr"
NAME_PATTERN = re.compile(r"^[a-z][a-z0-9]{0,3}$")  # keeps interface names within 15 characters
MAX_NAMES = 9
LOCK_TIMEOUT_SECONDS = 180.0
COMMAND_TIMEOUT_SECONDS = 30.0
READY_TIMEOUT_SECONDS = 10.0
STOP_TIMEOUT_SECONDS = 5.0

# Runs inside a namespace (or the root namespace) as ``python -I -S -c``: stdlib only, so
# it starts fast. Prints one JSON object: {"outcome": "ok" | "timeout" | errno name, "reply"}.
_PROBE_SCRIPT = r"""
import errno, json, socket, sys
kind, host, port, timeout = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
payloads = {"tcp": b"", "redis": b"PING\r\n",
            "http": b"GET /get HTTP/1.0\r\nHost: " + host.encode() + b"\r\n\r\n"}
try:
    with socket.create_connection((host, port), timeout=timeout) as conn:
        reply = b""
        if payloads[kind]:
            conn.sendall(payloads[kind])
            while len(reply) < 65536:
                chunk = conn.recv(4096)
                reply += chunk
                if not chunk or (kind == "redis" and reply.endswith(b"\r\n")):
                    break
    result = {"outcome": "ok", "reply": reply.decode("utf-8", "replace")}
except TimeoutError:
    result = {"outcome": "timeout", "reply": ""}
except OSError as exc:
    result = {"outcome": errno.errorcode.get(exc.errno or 0, str(exc)), "reply": ""}
print(json.dumps(result))
"""


class NetnsBedError(RuntimeError):
    """The bed could not be built, used safely, or removed."""


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


def _ip_binary() -> str:
    found = shutil.which("ip") or shutil.which("ip", path="/usr/sbin:/sbin")
    if found is None:
        raise NetnsBedError("the `ip` command (iproute2) is not installed")
    return found


def _ip(
    *args: str, namespace: str | None = None, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """Run ``ip [-n namespace] args``; raise NetnsBedError naming the command when it fails."""
    argv = [_ip_binary(), *(["-n", namespace] if namespace else []), *args]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=COMMAND_TIMEOUT_SECONDS)
    if check and done.returncode != 0:
        raise NetnsBedError(f"`{' '.join(argv)}` failed: {done.stderr.strip()}")
    return done


def _ip_json(*args: str, namespace: str | None = None) -> list[dict[str, Any]]:
    """Run ``ip -j args`` and decode its answer (an empty answer means an empty list)."""
    out = _ip("-j", *args, namespace=namespace).stdout.strip()
    return list(json.loads(out)) if out else []


def _process_start_time(pid: int) -> str | None:
    """Start time of ``pid`` from /proc, so a recorded pid is never confused with a reused one."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]


def _wait_until(check: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll ``check`` every 50 ms until true; raise NetnsBedError naming ``what`` on timeout."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise NetnsBedError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.05)


def _stop_process_group(proc: subprocess.Popen[Any]) -> None:
    """SIGTERM the process group led by ``proc``, then SIGKILL it if ``proc`` lingers."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        if proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(STOP_TIMEOUT_SECONDS)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class _BedLock:
    # The lock file doubles as the record of what the holder started in the root namespace.
    """An exclusive lock file that also stores what a bed started in the root namespace."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self, timeout: float) -> None:
        """Take the lock, waiting up to ``timeout`` seconds for another bed to finish."""
        deadline = time.monotonic() + timeout
        while self._fd is None:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                if time.monotonic() > deadline:
                    owner = self.read_state().get("owner", "unknown")
                    raise NetnsBedError(f"test bed of process {owner} holds {self.path}") from None
                time.sleep(0.1)
                continue
            # The previous holder removes the file on release: a lock on a removed file is no lock.
            if self.path.exists() and os.stat(self.path).st_ino == os.fstat(fd).st_ino:
                self._fd = fd
            else:
                os.close(fd)

    def read_state(self) -> dict[str, Any]:
        """The state a previous (crashed) holder left, or {} if none or unreadable."""
        try:
            state = json.loads(self.path.read_text() or "{}")
        except (OSError, ValueError):
            return {}
        return state if isinstance(state, dict) else {}

    def write_state(self, state: dict[str, Any]) -> None:
        assert self._fd is not None
        os.ftruncate(self._fd, 0)
        os.pwrite(self._fd, json.dumps(state).encode(), 0)

    def release(self) -> None:
        """Remove the lock file and unlock it (in this order, see ``acquire``)."""
        if self._fd is None:
            return
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        os.close(self._fd)
        self._fd = None


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
        self._lock = _BedLock(lock_path)
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
            _clean_leftovers(self._lock.read_state())
            self._lock.write_state({"owner": os.getpid()})
            self._check_range_is_free()
            self._temp_dir = Path(tempfile.mkdtemp(prefix=TEMP_DIR_PREFIX))
            self._save_state()
            _ip("route", "add", "unreachable", str(ADDRESS_RANGE))
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
        steps += [partial(_delete_namespace, s.namespace) for s in self.subnets.values()]
        steps += [partial(_delete_link, s.root_device) for s in self.subnets.values()]
        steps += [_delete_guard_route, self._stop_redis, self._remove_temp_dir]
        for step in steps:
            try:
                step()
            except Exception as exc:  # keep going: a half-removed bed is worse than a late error
                errors.append(str(exc))
        self._lock.release()
        if errors:
            raise NetnsBedError("teardown incomplete: " + "; ".join(errors))

    def _check_range_is_free(self) -> None:
        addresses = [
            f"{link['ifname']}: {addr['local']}"
            for link in _ip_json("-4", "addr", "show")
            for addr in link.get("addr_info", [])
            if ipaddress.ip_address(addr["local"]) in ADDRESS_RANGE
        ]
        routes = _ip_json("-4", "route", "show", "table", "all", "root", str(ADDRESS_RANGE))
        if addresses or routes:
            found = addresses + [str(route.get("dst")) for route in routes]
            raise NetnsBedError(f"{ADDRESS_RANGE} is already in use on this host: {found}")

    def _build_subnet(self, s: Subnet) -> None:
        ns = s.namespace
        _ip("netns", "add", ns)
        for command in (
            f"link add {s.root_device} type veth peer name {s.namespace_device} netns {ns}",
            f"addr add {s.root_address}/24 dev {s.root_device}",
            f"link set {s.root_device} up",
        ):
            _ip(*command.split())
        for command in (
            "link set lo up",
            f"addr add {s.service_address}/32 dev lo",
            f"addr add {s.namespace_address}/24 dev {s.namespace_device}",
            f"link set {s.namespace_device} up",
        ):
            _ip(*command.split(), namespace=ns)
        if _ip_json("route", "show", "default", namespace=ns):
            raise NetnsBedError(f"namespace {ns} unexpectedly has a default route")

    def _save_state(self) -> None:
        """Record what lives in the root namespace, for the cleanup after a crash."""
        pids = [p.pid for p in ([self._redis] if self._redis else [])]
        self._lock.write_state(
            {
                "owner": os.getpid(),
                "temp_dir": str(self._temp_dir) if self._temp_dir else None,
                "root_pids": [[pid, _process_start_time(pid)] for pid in pids],
            }
        )

    # -- Redis ---------------------------------------------------------------------------

    def _start_redis(self) -> None:
        assert self._temp_dir is not None
        binds = ["127.0.0.1", *(s.root_address for s in self.subnets.values())]
        port = _free_port()
        log = self._log_file("redis.log")
        options = f"--port {port} --appendonly no --protected-mode no".split()
        options += ["--save", "", "--dir", str(self._temp_dir)]  # no persistence, files in temp
        argv = ["redis-server", *options, "--bind", *binds]
        self._redis = subprocess.Popen(
            argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        self._redis_port = port
        self._save_state()
        self._wait_ready(self._redis, None, "127.0.0.1", port, "redis", "redis.log")

    def _stop_redis(self) -> None:
        if self._redis is not None:
            _stop_process_group(self._redis)
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
        command = [_ip_binary(), "netns", "exec", self.namespace(name), *argv]
        proc: subprocess.Popen[Any] = subprocess.Popen(command, env=env, **kwargs)
        self._processes.append(proc)
        return proc

    def run(
        self, name: str, argv: Sequence[str], *, check: bool = True, **kwargs: Any
    ) -> subprocess.CompletedProcess[str]:
        """Run a short command inside namespace ``name`` and capture its text output."""
        kwargs.setdefault("timeout", COMMAND_TIMEOUT_SECONDS)
        command = [_ip_binary(), "netns", "exec", self.namespace(name), *argv]
        return subprocess.run(command, capture_output=True, text=True, check=check, **kwargs)

    def _stop_processes(self) -> None:
        for proc in self._processes:
            _stop_process_group(proc)
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

        _wait_until(answered, READY_TIMEOUT_SECONDS, f"{kind} server on {host}:{port}")

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
        route = self._route_to(address, namespace)
        if route is None or route.get("dev") != expect_device:
            where = f"namespace {self.namespace(namespace)}" if namespace else "the root namespace"
            raise NetnsBedError(
                f"in {where}, traffic to {address} would not leave through {expect_device}: "
                f"{route if route else 'no route'}"
            )
        return route

    def _route_to(self, address: str, namespace: str | None) -> dict[str, Any] | None:
        """The route to ``address``, or None when the kernel has none (nothing would be sent)."""
        ns = self.namespace(namespace) if namespace else None
        done = _ip("-j", "route", "get", address, namespace=ns, check=False)
        if done.returncode != 0:
            if re.search(r"unreachable|no route", done.stderr, re.IGNORECASE):
                return None
            raise NetnsBedError(f"`ip route get {address}` failed: {done.stderr.strip()}")
        routes = json.loads(done.stdout)
        return dict(routes[0]) if routes else None

    def _ensure_contained(self, address: str, namespace: str | None) -> None:
        """Raise unless a packet to ``address`` from ``namespace`` stays inside the bed."""
        if ipaddress.ip_address(address).is_loopback:
            self.check_route(address, "lo", namespace=namespace)
            return
        if ipaddress.ip_address(address) not in ADDRESS_RANGE:
            raise NetnsBedError(f"{address} is outside {ADDRESS_RANGE}; the bed sends nowhere else")
        route = self._route_to(address, namespace)
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
        argv = [
            sys.executable,
            "-I",
            "-S",
            "-c",
            _PROBE_SCRIPT,
            kind,
            host,
            f"{port}",
            f"{timeout}",
        ]
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


# -- cleanup of earlier runs ---------------------------------------------------------------

_NAMESPACE_PATTERN = re.compile(rf"^{PREFIX}-\d+-[a-z][a-z0-9]*$")
_LINK_PATTERN = re.compile(rf"^{PREFIX}\d+[a-z][a-z0-9]*[01]$")


def _clean_leftovers(state: dict[str, Any]) -> None:
    """Remove what a bed that died without teardown left (called with the lock held)."""
    names = [entry["name"] for entry in _ip_json("netns", "list")]
    for namespace in filter(_NAMESPACE_PATTERN.match, names):
        _delete_namespace(namespace)
    for link in _ip_json("link", "show"):
        if _LINK_PATTERN.match(link.get("ifname", "")):
            _delete_link(link["ifname"])
    _delete_guard_route()
    for pid, start_time in state.get("root_pids") or []:
        if start_time is not None and _process_start_time(pid) == start_time:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
    temp_dir = state.get("temp_dir")
    if temp_dir and Path(temp_dir).name.startswith(TEMP_DIR_PREFIX):
        shutil.rmtree(temp_dir, ignore_errors=True)


def _namespace_pids(namespace: str) -> list[int]:
    done = _ip("netns", "pids", namespace, check=False)
    return [int(pid) for pid in done.stdout.split()] if done.returncode == 0 else []


def _delete_namespace(namespace: str) -> None:
    """Kill every process left in ``namespace`` (it was created by a bed) and delete it."""
    if not Path("/run/netns", namespace).exists():
        return
    for pid in _namespace_pids(namespace):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    _wait_until(
        lambda: not _namespace_pids(namespace),
        STOP_TIMEOUT_SECONDS,
        f"the processes of namespace {namespace} to exit",
    )
    _ip("netns", "del", namespace)


def _delete_link(device: str) -> None:
    if _ip("link", "show", device, check=False).returncode == 0:
        _ip("link", "del", device)


def _delete_guard_route() -> None:
    if _ip_json("route", "show", "exact", str(ADDRESS_RANGE), "type", "unreachable"):
        _ip("route", "del", "unreachable", str(ADDRESS_RANGE))


# -- pytest ----------------------------------------------------------------------------------


def netns_unavailable_reason() -> str | None:
    """Why this machine cannot build the bed, or None when it can."""
    if not sys.platform.startswith("linux"):
        return "network namespaces need Linux"
    if os.geteuid() != 0:
        return "building network namespaces needs root"
    if shutil.which("ip") is None and shutil.which("ip", path="/usr/sbin:/sbin") is None:
        return "the `ip` command (iproute2) is not installed"
    if shutil.which("redis-server") is None:
        return "redis-server is not installed (apt-get install -y redis-server)"
    return None


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
