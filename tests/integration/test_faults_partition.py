"""A worker cut off from Redis (alive, still talking to the target) past the lapse, at
default settings: it is taken for lost, its sent GET is retried on another worker, and
when the link heals its late result changes nothing; the report is the retry's.

Worker ``cut`` reaches Redis through a proxy the test can cut; worker ``whole`` reaches it
directly. The GET takes 40 s at the target, so the cut worker's answer comes back after
the link healed and before the retry's: without compare-and-set on the delivery holding
the step, the cut worker's late result would be the one recorded. About 90 s.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import redis

from runtime.loading import VariableFile
from tasks.context import Services
from tasks.dispatch import RunRequest, start_run
from tests.fault_rig import PartitionProxy, RecordingTarget
from tests.integration.conftest import WorkerProcess, wait_until
from tests.integration.fault_helpers import default_settings, drop_prefix, wait_stored
from worker.app import create_app

pytestmark = pytest.mark.integration
ANSWER_MS = 40_000


def slow_get_run(base_url: str, tag: str) -> RunRequest:
    item = {
        "name": "slow-get",
        "request": {"method": "GET", "url": f"{base_url}/r/{tag}/slow-get?ms={ANSWER_MS}"},
        "event": [
            {
                "listen": "test",
                "script": {"exec": ['pm.test("ok", () => pm.response.to.have.status(200));']},
            }
        ],
    }
    collection = {"info": {"_postman_id": uuid.uuid4().hex, "name": "partition"}, "item": [item]}
    return RunRequest(collection, VariableFile("env", "env-1", []))


def test_a_partitioned_worker_coming_back_does_not_overwrite_the_resolution(
    redis_url: str, tmp_path: Path, target: RecordingTarget
) -> None:
    settings = default_settings(redis_url, tmp_path)
    assert settings.worker_lapse == 15 and settings.redis_retry_seconds == 60
    app = create_app(settings)
    services = Services.of(app)
    queue = settings.queue_for(settings.default_network)
    upstream = urlsplit(redis_url)
    proxy = PartitionProxy(upstream.port or 6379).start()
    through_proxy = f"redis://127.0.0.1:{proxy.port}{upstream.path}"
    workers: list[WorkerProcess] = []
    try:
        cut = WorkerProcess(
            settings, [queue], "cut", extra_env={"PMRUNNER_REDIS_URL": through_proxy}
        )
        workers.append(cut)
        cut.wait_ready(app, timeout=60)
        tag = uuid.uuid4().hex[:10]
        run_id = start_run(app, slow_get_run(target.base_url, tag))
        wait_until(lambda: target.received(tag), 30, "the cut worker sent the GET")
        first_sent_at = target.last_seen(tag)
        assert services.registry.progress(run_id)["b0:0:started"]["worker"].startswith("cut@")
        whole = WorkerProcess(settings, [queue], "whole")
        workers.append(whole)
        whole.wait_ready(app, timeout=60)
        proxy.cut()
        # The cut worker's heartbeat lapses; the whole one resolves its step: a retry.
        wait_until(
            lambda: str(services.registry.progress(run_id).get("b0:0:note", "")).startswith(
                "retried"
            ),
            45,
            "the cut worker's step resolved",
        )
        proxy.heal()
        # Healed well before the cut worker's answer comes: it records (or not) after this.
        assert time.time() < first_sent_at + ANSWER_MS / 1000 - 5
        stored_at = wait_stored(services, run_id, ANSWER_MS / 1000 + 60)
        assert stored_at is not None, f"run {run_id} was lost: {cut.log()} {whole.log()}"
        assert cut.process.poll() is None, cut.log()  # alive throughout
        report = services.store.get(run_id)
        assert report is not None
        [execution] = report["run"]["executions"]
        assert execution["worker"].startswith("whole@") and execution["attempt"] == 2
        assert [a["passed"] for a in execution["assertions"]] == [True]
        assert any("retried" in line for _, line in execution["console"])
        assert target.received(tag)[("GET", "slow-get")] == 2  # the retry, flagged
        assert any(name.startswith("cut@") for name in services.workers.live()), cut.log()
    finally:
        for worker in workers:
            worker.stop()
        proxy.stop()
        drop_prefix(redis.Redis.from_url(redis_url), settings.key_prefix)
