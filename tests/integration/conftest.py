"""Fixtures for integration tests: a real Redis, real Celery workers.

Redis comes from ``PMRUNNER_TEST_REDIS_URL`` (default: database 12 of the
local Redis, which ``.ci/run`` starts when none answers). Each test gets its
own key prefix and queue names, so tests never see each other's runs.
"""

from __future__ import annotations

import os
import signal
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import redis
from celery import Celery, signals
from celery.contrib.testing.worker import start_worker

import tasks.notify
import tasks.run
import tasks.sweep  # noqa: F401
from tests.fault_rig import RecordingTarget
from worker.app import create_app, worker_command
from worker.embedded import EmbeddedRedis
from worker.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
REDIS_URL = os.environ.get("PMRUNNER_TEST_REDIS_URL", "redis://127.0.0.1:6379/12")


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The tests' Redis: ``PMRUNNER_TEST_REDIS_URL``, else the local one, else an embedded one.

    On a machine with no Redis the suite starts pmrunner's embedded Redis (the
    one ``pmrunner up`` uses), so ``pytest`` needs nothing installed first.
    """
    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).ping()
    except redis.RedisError as error:
        if "PMRUNNER_TEST_REDIS_URL" in os.environ:
            pytest.fail(f"integration tests need Redis at {REDIS_URL}: {error}")
    else:
        yield REDIS_URL
        return
    with EmbeddedRedis(tmp_path_factory.mktemp("embedded-redis")) as embedded:
        yield embedded.url


def remove_test_keys(settings: Settings) -> None:
    """Delete what a test wrote under its key prefix, and its queues with kombu's bindings.

    Celery's results expire on their own; the queues of the test's own default
    network and control queue, and kombu's records of them, would not.
    """
    client = redis.Redis.from_url(settings.redis_url)
    queues = [settings.queue_for(settings.default_network), settings.control_queue]
    try:
        for key in client.scan_iter(f"{settings.key_prefix}*", count=1000):
            client.delete(key)
        for queue in queues:
            client.delete(queue, f"_kombu.binding.{queue}", f"_kombu.binding_permanent.{queue}")
    finally:
        client.close()


@pytest.fixture()
def settings(redis_url: str, tmp_path: Path) -> Iterator[Settings]:
    """Settings on a key prefix and default network of the test's own, removed after it.

    Whatever the test runs with them (the app, a subprocess given their
    ``PMRUNNER_*`` variables) writes under that prefix.
    """
    tag = uuid.uuid4().hex[:8]
    test_settings = Settings(
        redis_url=redis_url,
        default_network=f"d{tag}",
        key_prefix=f"pmrtest:{tag}:",
        run_deadline=30,
        sweep_interval=1,
        data_dir=tmp_path,
    )
    yield test_settings
    remove_test_keys(test_settings)


@pytest.fixture()
def app(settings: Settings) -> Celery:
    """The Celery app on the test's settings (their fixture removes its keys)."""
    return create_app(settings)


@contextmanager
def in_process_worker(app: Celery, queues: list[str], concurrency: int = 8) -> Iterator[Any]:
    """A real Celery worker (threads pool) in this process, consuming ``queues``.

    Celery's test worker ends with a cold shutdown, which sends no
    ``worker_shutdown``: sent here, as a worker process sends it when it
    stops, it ends the worker's heartbeat, upkeep and queue announcements,
    which would otherwise go on writing under the test's prefix after it.
    """
    stopping: list[Any] = []
    try:
        with start_worker(
            app,
            pool="threads",
            concurrency=concurrency,
            queues=queues,
            perform_ping_check=False,
            loglevel="WARNING",
            shutdown_timeout=30,
        ) as worker:
            stopping.append(worker)
            yield worker
    finally:
        for stopped in stopping:
            signals.worker_shutdown.send(sender=stopped)


class ChildProcess:
    """A pmrunner process (a worker, the scheduler) in its own session, with its settings.

    Parameters:
        settings: given to the process as ``PMRUNNER_*`` variables.
        argv: its command line.
        extra_env: more variables.
        cwd: its working directory.
    """

    def __init__(
        self,
        settings: Settings,
        argv: list[str],
        extra_env: dict[str, str] | None = None,
        cwd: Path = ROOT,
    ) -> None:
        env = {**os.environ, **settings.to_env(), **(extra_env or {})}
        # A file, not a pipe: a process that logs much (a Redis outage) never blocks on it.
        self.output = tempfile.TemporaryFile()  # noqa: SIM115 (closed in stop)
        self.process = subprocess.Popen(
            argv,
            cwd=cwd,
            env=env,
            stdout=self.output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def log(self) -> str:
        """What the process printed so far."""
        self.output.seek(0)
        return self.output.read().decode(errors="replace")

    def kill(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.kill()
        self.output.close()


class WorkerProcess(ChildProcess):
    """A ``celery -A worker worker`` subprocess, for tests that kill workers."""

    def __init__(
        self,
        settings: Settings,
        queues: list[str],
        name: str,
        concurrency: int = 4,
        extra_env: dict[str, str] | None = None,
        prefix: list[str] | None = None,
        events: bool = False,
    ) -> None:
        argv = worker_command(queues, concurrency=concurrency, name=f"{name}@%h", events=events)
        super().__init__(settings, [*(prefix or []), *argv], extra_env)
        self.name = name

    def wait_ready(self, app: Celery, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"worker {self.name} exited: {self.log()}")
            replies = app.control.ping(timeout=0.5) or []
            if any(self.name in next(iter(reply)) for reply in replies):
                return
        raise TimeoutError(f"worker {self.name} did not answer a ping within {timeout} s")


def wait_until(check: Callable[[], object], timeout: float = 30, what: str = "condition") -> None:
    """Poll ``check`` every 0.1 s until it is true; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise AssertionError(f"{what} not met within {timeout} s")


@pytest.fixture()
def worker_processes() -> Iterator[list[WorkerProcess]]:
    started: list[WorkerProcess] = []
    yield started
    for process in started:
        process.stop()


@pytest.fixture()
def target() -> Iterator[RecordingTarget]:
    """A loopback server that records what it really received (the fault tests' target)."""
    server = RecordingTarget().start()
    yield server
    server.stop()
