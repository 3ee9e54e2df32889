"""Shared pieces of the fault tests: default settings on a test's own prefix, workers, runs."""

from __future__ import annotations

import sys
import time
import uuid
from pathlib import Path

import redis
from celery import Celery

from runtime.loading import VariableFile
from tasks.context import Services
from tasks.dispatch import RunRequest, start_run
from tests.fault_rig import fault_collection, fault_environment
from tests.integration.conftest import ChildProcess
from worker.settings import Settings


def default_settings(redis_url: str, data_dir: Path, **extra: object) -> Settings:
    """DEFAULT settings (deadline, lapse, intervals) on a key prefix and queues of its own."""
    tag = uuid.uuid4().hex[:8]
    return Settings(
        redis_url=redis_url,
        key_prefix=f"pmrtest:{tag}:",
        default_network=f"d{tag}",
        data_dir=data_dir,
        **extra,  # type: ignore[arg-type]
    )


def start_fault_run(app: Celery, base_url: str, extra_ms: int = 0) -> tuple[str, str]:
    """Start a run of the fault collection; return its run id and its tag at the target.

    ``extra_ms`` slows every request down by that much (see ``fault_collection``).
    """
    tag = uuid.uuid4().hex[:10]
    raw = fault_environment(base_url, tag)
    environment = VariableFile(raw["name"], raw["id"], raw["values"])
    return start_run(app, RunRequest(fault_collection(extra_ms=extra_ms), environment)), tag


def wait_stored(services: Services, run_id: str, timeout: float) -> float | None:
    """Poll the store (without finalizing anything) until the run's report is there; when."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if services.store.get(run_id) is not None:
            return time.time()
        time.sleep(0.1)
    return None


def drop_prefix(client: redis.Redis, prefix: str) -> None:
    for key in client.scan_iter(f"{prefix}*"):
        client.delete(key)


class BeatProcess(ChildProcess):
    """``celery -A worker beat``: the scheduler, which also sweeps and delivers webhooks."""

    def __init__(self, settings: Settings) -> None:
        argv = [sys.executable, "-m", "celery", "-A", "worker", "beat"]
        super().__init__(settings, [*argv, "-l", "INFO"])
