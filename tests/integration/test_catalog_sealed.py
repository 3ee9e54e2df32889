"""The poller's catalog keeps Postman collections and environments sealed under the key.

Secrets of every kind (``secrets_helpers.collection``, a secret-type
environment value) are planted in a fake Postman's collection and
environment; the real poller fetches them into Redis; then every key of the
database is searched.
"""

from __future__ import annotations

import dataclasses
import uuid

import pytest

from pmrunner.errors import ConfigurationError
from scheduler.snapshot import collection_key, environment_key
from tasks.monitors import catalog_for
from tests.fakes.fake_postman import FakePostman
from tests.integration.scheduler_helpers import postman_scheduler
from tests.integration.secrets_helpers import RedisWatch, collection, planted
from worker.settings import Settings

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("sealed", [True, False], ids=["sealed", "plain"])
def test_no_secret_of_a_polled_collection_or_environment_is_readable_in_redis(
    settings: Settings, sealed: bool
) -> None:
    s = planted()
    secret_key = f"key-{uuid.uuid4().hex}" if sealed else None
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
    if sealed:
        assert found == {}
        assert content_key in watch.sealed
        keyless = catalog_for(dataclasses.replace(settings, secret_key=None))
        with pytest.raises(ConfigurationError, match="PMRUNNER_SECRET_KEY is not set"):
            keyless.content(environment_key(environment_uid))
    else:  # the search sees what is there: without a key, the catalog holds them
        assert {"env", "authz", "basic", "oauth2"} <= found[content_key]
