"""Runs prepared ahead of their slot: nothing is claimed ahead, and the slot sees the last poll.

Two tickers on one catalog in real Redis; the slot is a few seconds ahead,
inside the lookahead, so each ticker prepares the run before it is due.
"""

from __future__ import annotations

import time
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


def ticker(services: Services, catalog: Catalog) -> Ticker:
    source = CatalogSource(catalog, None, poll_interval=30)
    return Ticker(services, catalog, source, lambda: SourceHealth("healthy", None, time.time()))


def slot_soon(services: Services, catalog: Catalog, path: str = "v1") -> tuple[Schedule, float]:
    """Commit one monitor whose next slot is 3 to 4 s away (inside the lookahead)."""
    now = time.time()
    if now % 1 > 0.8:  # keep the slot a whole second ahead however slow the commit
        time.sleep(0.3)
        now = time.time()
    schedule = Schedule.from_cron(f"{int(now + 3) % 60} * * * * *")
    moment = datetime.fromtimestamp(now, UTC)
    catalog.commit(snapshot(schedule, path), moment)
    slot = schedule.next_slot(moment).timestamp()
    assert slot - time.time() < LOOKAHEAD
    return schedule, slot


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


def claim_key(services: Services, slot: float) -> str:
    return services.registry.keys.slot("m-ahead", slot_key(datetime.fromtimestamp(slot, UTC)))


def catalog_of(services: Services, settings: Settings) -> Catalog:
    return Catalog(services.registry.redis, settings.key_prefix, 3600, services.registry.sealer)


def test_a_scheduler_that_stops_after_preparing_loses_no_slot(
    app: Celery, settings: Settings
) -> None:
    services = Services.of(app)
    catalog = catalog_of(services, settings)
    _, slot = slot_soon(services, catalog)
    first, second = ticker(services, catalog), ticker(services, catalog)
    assert prepared(first)
    # Preparing claimed nothing: the slot is free, nothing is registered.
    assert not services.registry.redis.exists(claim_key(services, slot))
    assert services.registry.redis.zcard(services.registry.keys.active_runs()) == 0
    started = tick_past(slot, second)  # the first never ticks again
    assert len(started) == 1
    ticket = services.registry.ticket(started[0])
    assert ticket is not None and ticket.monitor is not None
    assert ticket.monitor["slot"] == slot_key(datetime.fromtimestamp(slot, UTC))


def test_two_schedulers_that_both_prepared_start_the_slot_once(
    app: Celery, settings: Settings
) -> None:
    services = Services.of(app)
    catalog = catalog_of(services, settings)
    _, slot = slot_soon(services, catalog)
    first, second = ticker(services, catalog), ticker(services, catalog)
    assert prepared(first) and prepared(second)
    started = tick_past(slot, first, second)
    assert len(started) == 1
    queue = settings.queue_for(settings.default_network)
    assert services.registry.redis.llen(queue) == 1  # one run, one first step


def test_an_edit_polled_after_preparing_is_what_the_slot_runs(
    app: Celery, settings: Settings
) -> None:
    services = Services.of(app)
    catalog = catalog_of(services, settings)
    schedule, slot = slot_soon(services, catalog, "v1")
    one = ticker(services, catalog)
    assert prepared(one)
    catalog.commit(snapshot(schedule, "v2"), datetime.now(UTC))
    [run_id] = tick_past(slot, one)
    ticket = services.registry.ticket(run_id)
    assert ticket is not None
    cached = services.registry.collection(ticket.collection_digest)
    assert cached is not None and cached["item"][0]["request"]["url"].endswith("/v2")


def test_a_monitor_paused_after_preparing_does_not_start(app: Celery, settings: Settings) -> None:
    services = Services.of(app)
    catalog = catalog_of(services, settings)
    schedule, slot = slot_soon(services, catalog)
    one = ticker(services, catalog)
    assert prepared(one)
    catalog.commit(snapshot(schedule, "v1", active=False), datetime.now(UTC))
    assert tick_past(slot, one) == []
    assert not services.registry.redis.exists(claim_key(services, slot))
    assert services.registry.redis.llen(settings.queue_for(settings.default_network)) == 0
