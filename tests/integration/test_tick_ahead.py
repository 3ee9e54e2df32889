"""Runs prepared ahead of their slot: nothing is claimed ahead, and the slot sees the last poll.

Two tickers on one catalog in real Redis; the slot is a few seconds ahead,
inside the lookahead, so each ticker prepares the run before it is due.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
from celery import Celery

from scheduler.catalog import Catalog
from scheduler.catalog_source import CatalogSource
from scheduler.health import SourceHealth
from scheduler.monitors import Monitor
from scheduler.schedule import Schedule
from scheduler.snapshot import Content, Snapshot, collection_key
from tasks.context import Services
from tasks.launches import LOOKAHEAD, slot_key
from tasks.schedule import Ticker
from worker.settings import Settings

pytestmark = pytest.mark.integration
JSON = dict[str, Any]


def collection(path: str) -> JSON:
    return {
        "info": {"_postman_id": "coll-ahead", "name": "ahead"},
        "item": [{"name": "one", "request": {"url": f"http://127.0.0.1:9/{path}"}}],
    }


def snapshot(schedule: Schedule, path: str, *, active: bool = True) -> Snapshot:
    monitor = Monitor(
        uid="m-ahead",
        name="ahead",
        schedule=schedule,
        source="postman",
        collection="c-ahead",
        environment=None,
        active=active,
    )
    content = {collection_key("c-ahead"): Content(path, collection(path))}
    return Snapshot(monitors={monitor.uid: monitor}, content=content)


def healthy() -> SourceHealth:
    return SourceHealth("healthy", None, time.time())


@dataclass
class Ahead:
    """One monitor committed to a catalog, its next slot 3 to 4 s away (inside the lookahead).

    Parameters:
        services: the app's services.
        settings: the test's settings.
        catalog: the catalog the monitor is committed to.
        schedule: the monitor's schedule.
        slot: its next slot (Unix seconds).
    """

    services: Services
    settings: Settings
    catalog: Catalog
    schedule: Schedule
    slot: float

    @property
    def redis(self) -> Any:
        return self.services.registry.redis

    def ticker(self) -> Ticker:
        """A ticker on the catalog (each one is a scheduler of its own)."""
        source = CatalogSource(self.catalog, None, poll_interval=30)
        return Ticker(self.services, self.catalog, source, healthy)

    def claim_key(self) -> str:
        """The key that claims the slot."""
        slot = slot_key(datetime.fromtimestamp(self.slot, UTC))
        return self.services.registry.keys.slot("m-ahead", slot)

    def queued(self) -> int:
        """Messages waiting in the default network's queue."""
        return int(self.redis.llen(self.settings.queue_for(self.settings.default_network)))


@pytest.fixture()
def ahead(app: Celery, settings: Settings) -> Ahead:
    """The monitor, its collection at ``v1``, committed with its slot just ahead."""
    services = Services.of(app)
    registry = services.registry
    catalog = Catalog(registry.redis, settings.key_prefix, 3600, registry.sealer)
    now = time.time()
    if now % 1 > 0.8:  # keep the slot a whole second ahead however slow the commit
        time.sleep(0.3)
        now = time.time()
    schedule = Schedule.from_cron(f"{int(now + 3) % 60} * * * * *")
    moment = datetime.fromtimestamp(now, UTC)
    catalog.commit(snapshot(schedule, "v1"), moment)
    slot = schedule.next_slot(moment).timestamp()
    assert slot - time.time() < LOOKAHEAD
    return Ahead(services, settings, catalog, schedule, slot)


def prepared(one: Ticker) -> list[Any]:
    one.tick()
    return [pending for pending in one.pending.values() if pending.run is not None]


def tick_past(slot: float, *tickers: Ticker) -> list[str]:
    started: list[str] = []
    while time.time() < slot + 1.5:
        for one in tickers:
            started += one.tick()[0]
        time.sleep(0.05)
    return started


def test_a_scheduler_that_stops_after_preparing_loses_no_slot(ahead: Ahead) -> None:
    first, second = ahead.ticker(), ahead.ticker()
    assert prepared(first)
    # Preparing claimed nothing: the slot is free, nothing is registered.
    assert not ahead.redis.exists(ahead.claim_key())
    assert ahead.redis.zcard(ahead.services.registry.keys.active_runs()) == 0
    started = tick_past(ahead.slot, second)  # the first never ticks again
    assert len(started) == 1
    ticket = ahead.services.registry.ticket(started[0])
    assert ticket is not None and ticket.monitor is not None
    assert ticket.monitor["slot"] == slot_key(datetime.fromtimestamp(ahead.slot, UTC))


def test_two_schedulers_that_both_prepared_start_the_slot_once(ahead: Ahead) -> None:
    first, second = ahead.ticker(), ahead.ticker()
    assert prepared(first) and prepared(second)
    started = tick_past(ahead.slot, first, second)
    assert len(started) == 1
    assert ahead.queued() == 1  # one run, one first step


def test_an_edit_polled_after_preparing_is_what_the_slot_runs(ahead: Ahead) -> None:
    one = ahead.ticker()
    assert prepared(one)
    ahead.catalog.commit(snapshot(ahead.schedule, "v2"), datetime.now(UTC))
    [run_id] = tick_past(ahead.slot, one)
    ticket = ahead.services.registry.ticket(run_id)
    assert ticket is not None
    cached = ahead.services.registry.collection(ticket.collection_digest)
    assert cached is not None and cached["item"][0]["request"]["url"].endswith("/v2")


def test_a_monitor_paused_after_preparing_does_not_start(ahead: Ahead) -> None:
    one = ahead.ticker()
    assert prepared(one)
    ahead.catalog.commit(snapshot(ahead.schedule, "v1", active=False), datetime.now(UTC))
    assert tick_past(ahead.slot, one) == []
    assert not ahead.redis.exists(ahead.claim_key())
    assert ahead.queued() == 0
