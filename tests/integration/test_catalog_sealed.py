"""The catalog keeps Postman collections, environments and webhook URLs sealed.

Secrets of every kind (``secrets_helpers.collection``, a secret-type
environment value) are planted in a fake Postman's collection and
environment; the real poller fetches them into Redis; then every key of the
database is searched. With a key given, and at default settings (no key
given: the key file of the data directory).
"""

from __future__ import annotations

import dataclasses
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest
import redis

from pmrunner.errors import ConfigurationError
from scheduler.catalog import Catalog
from scheduler.monitors import Monitor
from scheduler.schedule import Schedule
from scheduler.snapshot import Content, Snapshot, collection_key, environment_key
from store.sealing import Sealer
from tasks.monitors import catalog_for
from tests.fakes.fake_postman import FakePostman
from tests.integration.scheduler_helpers import postman_scheduler
from tests.integration.secrets_helpers import RedisWatch, collection, planted
from worker.settings import Settings

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("given_key", [True, False], ids=["given-key", "default"])
def test_no_secret_of_a_polled_collection_or_environment_is_readable_in_redis(
    settings: Settings, given_key: bool, tmp_path: Path
) -> None:
    s = planted()
    secret_key = f"key-{uuid.uuid4().hex}" if given_key else None
    with FakePostman() as postman:
        collection_uid = postman.add_collection(collection(s))
        values = [
            {"key": "baseUrl", "value": "http://127.0.0.1:9"},
            {"key": "envSecret", "value": s["env"], "type": "secret"},
        ]
        environment_uid = postman.add_environment("env", values)
        postman.add_monitor(
            "secrets", collection_uid=collection_uid, environment_uid=environment_uid
        )
        _, scheduler = postman_scheduler(settings, postman, secret_key=secret_key)
        assert scheduler.poller.poll_once()
        configured = dataclasses.replace(settings, secret_key=secret_key)
    watch = RedisWatch(settings.redis_url, s)
    found = watch.scan()
    content_key = f"{settings.key_prefix}catalog:content"

    # What the runs start from still reads in clear, through the cluster's key.
    catalog = catalog_for(configured)
    environment = catalog.content(environment_key(environment_uid))
    assert environment is not None and s["env"] in str(environment.body)
    polled = catalog.content(collection_key(collection_uid))
    assert polled is not None and s["authz"] in str(polled.body)
    assert found == {}
    assert content_key in watch.sealed
    # A process with another key (its own key file) is refused before it reads anything.
    other = dataclasses.replace(settings, secret_key=None, data_dir=tmp_path / "another-host")
    with pytest.raises(ConfigurationError, match="used with another secret key"):
        catalog_for(other)


def test_webhook_urls_of_monitors_are_sealed_in_the_catalog(settings: Settings) -> None:
    s = planted()
    hook = f"https://hooks.example.test/services/{s['apikey']}"
    monitor = Monitor(
        uid="hooked",
        name="Hooked",
        schedule=Schedule(cron="0 0 1 1 *"),
        source="local",
        collection="c.json",
        environment=None,
        webhooks=(hook,),
    )
    catalog = catalog_for(settings)
    catalog.commit(Snapshot(monitors={"hooked": monitor}), datetime.now(UTC))

    watch = RedisWatch(settings.redis_url, s)
    assert watch.scan() == {}
    assert f"{settings.key_prefix}catalog:monitors" in watch.sealed
    assert catalog.monitors()["hooked"].webhooks == (hook,)
    assert catalog_for(settings).load().monitors["hooked"] == monitor
    # An unchanged monitor is not seen as edited although its sealed form differs each time.
    changes = catalog.commit(Snapshot(monitors={"hooked": monitor}), datetime.now(UTC))
    assert not changes.edited


@pytest.mark.parametrize("before", ["clear", "previous-key"])
def test_a_commit_seals_again_what_was_stored_in_clear_or_under_a_previous_key(
    settings: Settings, before: str
) -> None:
    """An upgrade from unsealed storage, or a key rotation: unchanged entries are sealed anew."""
    s = planted()
    monitor = Monitor(
        uid="kept",
        name="Kept",
        schedule=Schedule(cron="0 0 1 1 *"),
        source="local",
        collection="c.json",
        environment=None,
        webhooks=(f"https://hooks.example.test/{s['apikey']}",),
    )
    snapshot = Snapshot(
        monitors={"kept": monitor},
        content={"environment:e": Content("1", {"values": [{"value": s["env"]}]})},
    )
    client = redis.Redis.from_url(settings.redis_url)
    old = Sealer() if before == "clear" else Sealer("old key")
    Catalog(client, settings.key_prefix, settings.max_staleness, old).commit(
        snapshot, datetime.now(UTC)
    )
    if before == "clear":
        assert RedisWatch(settings.redis_url, s).scan() != {}

    rotated = Sealer("new key", previous=[] if before == "clear" else ["old key"])
    catalog = Catalog(client, settings.key_prefix, settings.max_staleness, rotated)
    changes = catalog.commit(snapshot, datetime.now(UTC))

    assert not (changes.added or changes.edited) and changes.content == 1
    assert RedisWatch(settings.redis_url, s).scan() == {}
    only_new = Catalog(client, settings.key_prefix, settings.max_staleness, Sealer("new key"))
    loaded = only_new.load()
    assert (loaded.monitors, loaded.content) == (snapshot.monitors, snapshot.content)
