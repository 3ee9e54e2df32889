"""The scheduler against a hostile fake Postman: refused keys, spent budgets, one poller,
one shared rate budget, one run history per collection."""

from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path

import pytest
import redis
from celery import Celery
from click.testing import CliRunner

from api.runs import RunsQuery, runs_page
from pmrunner.cli import pmrunner
from scheduler.budget import RedisBudget
from scheduler.health import read_health
from scheduler.postman import PostmanClient
from tasks.context import Services
from tests.fakes.fake_postman import FakePostman
from tests.integration.conftest import wait_until
from tests.integration.scheduler_helpers import health_collection, postman_scheduler
from worker.settings import Settings

pytestmark = pytest.mark.integration


def add_monitor(postman: FakePostman, name: str, cron: str = "0 0 1 1 *") -> str:
    collection = postman.add_collection(health_collection(name))
    environment = postman.add_environment("env", {"baseUrl": "http://127.0.0.1:9"})
    monitor = postman.add_monitor(
        name, collection_uid=collection, environment_uid=environment, cron=cron
    )
    return str(monitor["uid"])


def state(settings: Settings) -> str:
    client = redis.Redis.from_url(settings.redis_url)
    health = read_health(
        client, settings.key_prefix, time.time(), poll_interval=30, max_staleness=86400
    )
    return health.state


@pytest.mark.parametrize("fault", ["revoked", "exhausted"])
def test_permanent_errors_back_off_say_why_once_and_show_unhealthy(
    app: Celery, settings: Settings, fault: str, caplog: pytest.LogCaptureFixture
) -> None:
    with FakePostman() as postman:
        add_monitor(postman, "kept")
        _, scheduler = postman_scheduler(settings, postman)
        assert scheduler.poller.poll_once()
        assert state(settings) == "healthy"
        postman.start_outage(fault)
        postman.clear_requests()
        with caplog.at_level(logging.WARNING, logger="pmrunner.scheduler"):
            for _ in range(3):
                scheduler.poller._next_poll = 0.0
                scheduler.poller.step()
        assert len(postman.requests) == 3, "a permanent error is not retried"
        assert state(settings) == "unhealthy"
        said = [r.message for r in caplog.records if "refused" in r.message]
        assert len(said) == 1, said
        assert "1 monitors of the last good poll keep running" in said[0]
        assert scheduler.poller._next_poll - time.time() > 250, "backs off for minutes"


def test_a_refused_key_with_nothing_known_says_so(
    app: Celery, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    with FakePostman() as postman:
        add_monitor(postman, "never")
        postman.start_outage("revoked")
        _, scheduler = postman_scheduler(settings, postman)
        with caplog.at_level(logging.WARNING, logger="pmrunner.scheduler"):
            assert not scheduler.poller.poll_once()
    messages = " ".join(record.message for record in caplog.records)
    assert "no monitors are known yet" in messages
    assert "last good poll keep running" not in messages


def test_runner_start_exits_when_postman_refuses_the_key(
    monkeypatch: pytest.MonkeyPatch, settings: Settings
) -> None:
    for name in [name for name in os.environ if name.startswith("PMRUNNER_")]:
        monkeypatch.delenv(name)
    with FakePostman() as postman:
        monkeypatch.setenv("PMRUNNER_POSTMAN_BASE_URL", postman.url)
        monkeypatch.setenv("PMRUNNER_REDIS_URL", settings.redis_url)
        monkeypatch.setenv("PMRUNNER_KEY_PREFIX", settings.key_prefix)
        result = CliRunner().invoke(
            pmrunner,
            ["runner", "start", "--key", "PMAK-wrong-key", "--monitor", "1-abc"],
            catch_exceptions=False,
        )
    assert result.exit_code == 1, result.output
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and "Postman refused the API key" in lines[0], result.stderr
    assert "PMAK-wrong-key" not in result.output


def test_one_poller_for_two_schedulers(app: Celery, settings: Settings) -> None:
    with FakePostman() as postman:
        add_monitor(postman, "once")
        first = postman_scheduler(settings, postman)[1].poller
        second = postman_scheduler(settings, postman)[1].poller
        first.step()
        second.step()
        listings = postman.requests_to("/monitors")
    assert len([r for r in listings if r.path == "/monitors"]) == 1
    assert first.lease.hold() and not second.lease.hold()


def test_runs_that_could_not_start_share_the_collections_history(
    app: Celery, settings: Settings, tmp_path: Path
) -> None:
    with FakePostman() as postman:
        uid = add_monitor(postman, "lost", cron="* * * * * *")
        collection_uid = postman.edit_monitor(uid)["collectionUid"]
        postman.remove_collection(collection_uid)
        celery_app, scheduler = postman_scheduler(settings, postman)
        services = Services.of(celery_app)
        assert scheduler.poller.poll_once()
        wait_until(lambda: scheduler.ticker.tick()[0], timeout=5, what="a due slot")
    by_id = runs_page(services.store, "coll-lost", RunsQuery(status="failed"))
    by_uid = runs_page(services.store, collection_uid, RunsQuery(status="failed"))
    assert by_id.total >= 1 and by_uid.total == by_id.total
    assert "could not start" in by_id.runs[0]["error"]
    assert "not in the catalog" in by_id.runs[0]["error"]


def test_every_process_draws_from_one_budget_and_pauses_together(settings: Settings) -> None:
    with FakePostman() as postman:
        uid = add_monitor(postman, "budget")
        client = redis.Redis.from_url(settings.redis_url)
        clients = [
            PostmanClient(postman.api_key, base_url=postman.url, budget=budget, max_retries=2)
            for budget in (RedisBudget(client, postman.api_key, postman.url) for _ in range(3))
        ]
        stop = time.monotonic() + 15

        def hammer(postman_client: PostmanClient) -> None:
            while time.monotonic() < stop:
                postman_client.get_monitor(uid)

        threads = [threading.Thread(target=hammer, args=(c,)) for c in clients]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        calls = sorted(r.at for r in postman.requests_to("/monitors"))
        assert postman.rate_limited == 0
        assert max(sum(1 for t in calls if s <= t < s + 10) for s in calls) <= 9
        time.sleep(10)  # a fresh window, so only the injected 429 can pause anyone
        postman.rate_limit_next(1, retry_after="3")
        postman.clear_requests()
        first = threading.Thread(target=clients[0].get_monitor, args=(uid,))
        first.start()  # answered 429, then retried after 3 s
        wait_until(lambda: postman.requests, timeout=5)
        time.sleep(0.2)
        clients[1].get_monitor(uid)  # another "process": held by the same pause
        first.join()
        after = sorted(r.at for r in postman.requests_to("/monitors"))
    assert len(after) == 3 and after[1] - after[0] >= 2.9 and after[2] - after[0] >= 2.9
