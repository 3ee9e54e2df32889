"""A fault rig for tests and the fault benchmark: a target that logs what it really
received, a private Redis that can be stopped, collections whose every request
names its run, and checks that a report tells the truth about each request.

The target answers ``/r/<run tag>/<item>?ms=N`` after N milliseconds with 200
and logs (method, path, time) when the request arrives, before it answers, so
a request whose worker dies mid-flight is still seen as received.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import socket
import subprocess
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import redis

from store.keys import text

JSON = dict[str, Any]
SAFE = {"GET", "HEAD", "OPTIONS", "TRACE"}


class RecordingTarget(ThreadingHTTPServer):
    """A loopback HTTP server that logs every request it receives."""

    daemon_threads = True

    def __init__(self, host: str = "127.0.0.1") -> None:
        super().__init__((host, 0), _RecordingHandler)
        self.log: list[tuple[str, str, float]] = []
        self.lock = threading.Lock()

    @property
    def base_url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{text(host)}:{port}"

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Quiet: a worker killed mid-request leaves a broken pipe, which is expected here."""

    def start(self) -> RecordingTarget:
        threading.Thread(target=self.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        self.shutdown()
        self.server_close()

    def received(self, tag: str) -> Counter[tuple[str, str]]:
        """How often each (method, item) of run ``tag`` arrived."""
        with self.lock:
            return Counter(
                (method, path.split("/")[3]) for method, path, _ in self.log if f"/r/{tag}/" in path
            )

    def last_seen(self, tag: str) -> float:
        """When the last request of run ``tag`` arrived (``time.time()``)."""
        with self.lock:
            return max((at for _, path, at in self.log if f"/r/{tag}/" in path), default=0.0)


class _RecordingHandler(BaseHTTPRequestHandler):
    server: RecordingTarget

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        with self.server.lock:
            self.server.log.append((self.command, urlsplit(self.path).path, time.time()))
        delay = int((parse_qs(urlsplit(self.path).query).get("ms") or ["0"])[0])
        time.sleep(delay / 1000)
        body = b'{"ok": true}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _answer


# (name, method, delay in ms): safe and unsafe requests, long enough to be killed mid-flight.
FAULT_ITEMS = [
    ("get-a", "GET", 400),
    ("post-b", "POST", 900),
    ("get-c", "GET", 1200),
    ("put-d", "PUT", 700),
    ("delete-e", "DELETE", 500),
    ("get-f", "GET", 300),
]


def fault_collection(name: str = "faults", extra_ms: int = 0) -> JSON:
    """A collection of FAULT_ITEMS against ``{{baseUrl}}``, each testing its 200.

    ``extra_ms`` makes every request that much slower (to span an outage).
    """
    items = []
    for item_name, method, base_delay in FAULT_ITEMS:
        delay = base_delay + extra_ms
        items.append(
            {
                "name": item_name,
                "request": {
                    "method": method,
                    "url": f"{{{{baseUrl}}}}/r/{{{{tag}}}}/{item_name}?ms={delay}",
                },
                "event": [
                    {
                        "listen": "test",
                        "script": {
                            "exec": ['pm.test("ok", () => pm.response.to.have.status(200));']
                        },
                    }
                ],
            }
        )
    return {
        "info": {
            "name": name,
            "_postman_id": str(uuid.uuid4()),
            "schema": "https://schema.getpostman.com/json/collection/v2.1.0/collection.json",
        },
        "item": items,
    }


def fault_environment(base_url: str, tag: str) -> JSON:
    return {
        "id": str(uuid.uuid4()),
        "name": "faults",
        "values": [
            {"key": "baseUrl", "value": base_url, "enabled": True},
            {"key": "tag", "value": tag, "enabled": True},
            {"key": "password", "value": f"s3cret-{tag}", "type": "secret", "enabled": True},
        ],
    }


@dataclass
class Verdict:
    """What a report said against what the target saw, for one run."""

    problems: list[str] = field(default_factory=list)
    duplicates: int = 0  # requests the target received more than once
    unknown: int = 0  # steps reported "outcome unknown"
    retried: int = 0  # safe requests sent again, flagged


def judge(report: JSON, seen: Counter[tuple[str, str]]) -> Verdict:
    """Check every execution of ``report`` against what the target received."""
    verdict = Verdict()
    methods = {name: method for name, method, _ in FAULT_ITEMS}
    for execution in report["run"]["executions"]:
        name = execution["item_name"]
        method = methods[name]
        count = seen[(method, name)]
        errors = [f"{e['name']}: {e['message']}" for e in execution["errors"]]
        verdict.duplicates += max(count - 1, 0)
        if method not in SAFE and count > 1:
            verdict.problems.append(f"{name}: unsafe {method} received {count} times")
        if any(e.startswith("OutcomeUnknown") for e in errors):
            verdict.unknown += 1  # truthful whether or not the request reached the target
            continue
        if any(e.startswith("RunIncomplete") for e in errors):
            if count:
                verdict.problems.append(f"{name}: reported not run, but received: {errors}")
            if not any(reason in errors[0] for reason in ("not run: step", "no worker consumed")):
                verdict.problems.append(f"{name}: lost without a reason: {errors}")
            continue
        passed = [a["passed"] for a in execution["assertions"]]
        if errors or passed != [True] or count == 0:
            verdict.problems.append(f"{name}: {errors} {passed}, received {count} times")
        if count > 1:
            verdict.retried += 1
            if execution.get("attempt", 1) < 2 or not execution.get("console"):
                verdict.problems.append(f"{name}: sent {count} times, not flagged as a retry")
    return verdict


def run_keys_without_expiry(client: redis.Redis, prefix: str) -> list[str]:
    """Keys of runs (``<prefix>run:*``) and of workers that would never expire."""
    found = []
    for pattern in (f"{prefix}run:*", f"{prefix}worker:*", f"{prefix}outbox:*"):
        for key in client.scan_iter(pattern):
            if client.ttl(key) == -1:
                found.append(key.decode())
    return found


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PrivateRedis:
    """A redis-server of its own on a free port, persisted (AOF), that can be stopped."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed")
        self.folder.mkdir(parents=True, exist_ok=True)
        argv = [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.folder)]
        argv += ["--appendonly", "yes", "--appendfsync", "always", "--save", ""]
        self.process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                redis.Redis(port=self.port, socket_connect_timeout=0.2).ping()
                return
            except redis.RedisError:
                time.sleep(0.05)
        raise RuntimeError("the private redis-server did not start")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)
        self.process = None


class StepJournal:
    """Watches runs in Redis from outside and keeps the history of every step's state.

    Every ``interval`` seconds it reads, for each watched run, the step
    bookkeeping (progress fields, results, ended branches), which worker
    holds which step and in what phase, and where the run's messages are
    (waiting in a queue, or taken and not acknowledged); it keeps each change
    with its time. ``history(run_id)`` tells what became of a run that was
    lost: which step, which worker, what the queues held.
    """

    def __init__(
        self, client: redis.Redis, prefix: str, queues: list[str], interval: float = 0.25
    ) -> None:
        self.client = client
        self.prefix = prefix
        self.queues = queues
        self.interval = interval
        self._runs: dict[str, dict[str, str]] = {}
        self._changes: dict[str, list[str]] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="step-journal", daemon=True)
        self._started = time.time()

    def start(self) -> StepJournal:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)

    def watch(self, run_id: str) -> None:
        with self._lock:
            self._runs.setdefault(run_id, {})
            self._changes.setdefault(run_id, [])

    def note(self, run_id: str, what: str) -> None:
        """Add an event seen by the test itself (a kill, a wait that ended)."""
        with self._lock:
            self._changes.setdefault(run_id, []).append(f"{self._clock()} {what}")

    def history(self, run_id: str) -> str:
        self._observe(run_id)
        with self._lock:
            return "\n".join(self._changes.get(run_id, []))

    def _clock(self) -> str:
        return f"t+{time.time() - self._started:7.2f}"

    def _watch(self) -> None:
        while not self._stop.wait(self.interval):
            with self._lock:
                runs = list(self._runs)
            for run_id in runs:
                try:
                    self._observe(run_id)
                except redis.RedisError:
                    continue  # the fault may be Redis itself

    def _observe(self, run_id: str) -> None:
        now = self._snapshot(run_id)
        with self._lock:
            before = self._runs.get(run_id, {})
            for name in sorted(set(before) | set(now)):
                if before.get(name) != now.get(name):
                    self._changes.setdefault(run_id, []).append(
                        f"{self._clock()} {name}: {now.get(name, '(gone)')}"
                    )
            self._runs[run_id] = now

    def _snapshot(self, run_id: str) -> dict[str, str]:
        client, prefix = self.client, self.prefix
        found: dict[str, str] = {}
        for name, value in client.hgetall(f"{prefix}run:{run_id}:progress").items():
            found[f"progress {text(name)}"] = text(value)[:160]
        for name in client.hkeys(f"{prefix}run:{run_id}:results"):
            found[f"result {text(name)}"] = "recorded"
        done = sorted(text(b) for b in client.smembers(f"{prefix}run:{run_id}:done"))
        found["branches ended"] = ",".join(done)
        found["final"] = "yes" if client.exists(f"{prefix}run:{run_id}:final") else "no"
        for worker in client.smembers(f"{prefix}workers"):
            name = text(worker)
            state = "alive" if client.exists(f"{prefix}worker:{name}:alive") else "lapsed"
            for held, entry in client.hgetall(f"{prefix}worker:{name}:steps").items():
                if text(held).startswith(f"{run_id}|"):
                    phase = json.loads(entry).get("phase")
                    found[f"held {text(held)[len(run_id) + 1 :]}"] = f"{name} ({state}) {phase}"
        for queue in self.queues:
            for message in client.lrange(queue, 0, -1):
                if run_id in text(message):
                    found[f"waiting in {queue}: {_step_of(text(message))}"] = "yes"
        for tag, message in client.hgetall("unacked").items():
            if run_id in text(message):
                found[f"taken, unacknowledged {text(tag)}: {_step_of(text(message))}"] = "yes"
        return found


def _step_of(message: str) -> str:
    """The ``step=...`` of a step message (its argsrepr), or the message's start."""
    at = message.find("step=")
    return message[at : message.find(" ", at)] if at >= 0 else message[:60]


class PartitionProxy:
    """A TCP forwarder to ``upstream`` that can cut its clients off (a network partition).

    While cut, every connection through it is dropped and new ones are closed at
    once; the process behind it stays alive and reconnects when the link heals.
    """

    def __init__(self, upstream_port: int, host: str = "127.0.0.1") -> None:
        self.upstream = (host, upstream_port)
        self.listener = socket.create_server((host, 0))
        self.port = int(self.listener.getsockname()[1])
        self._cut = threading.Event()
        self._open: list[socket.socket] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()

    def start(self) -> PartitionProxy:
        threading.Thread(target=self._accept, name="partition-proxy", daemon=True).start()
        return self

    def cut(self) -> None:
        self._cut.set()
        with self._lock:
            for sock in self._open:
                _drop(sock)
            self._open.clear()

    def heal(self) -> None:
        self._cut.clear()

    def stop(self) -> None:
        self._stop.set()
        self.cut()
        self.listener.close()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if self._cut.is_set():
                _drop(client)
                continue
            try:
                server = socket.create_connection(self.upstream, timeout=5)
            except OSError:
                _drop(client)
                continue
            server.settimeout(None)
            with self._lock:
                self._open += [client, server]
            for source, sink in ((client, server), (server, client)):
                threading.Thread(target=_pump, args=(source, sink), daemon=True).start()


def _pump(source: socket.socket, sink: socket.socket) -> None:
    try:
        while chunk := source.recv(65536):
            sink.sendall(chunk)
    except OSError:
        pass
    _drop(source)
    _drop(sink)


def _drop(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    sock.close()
