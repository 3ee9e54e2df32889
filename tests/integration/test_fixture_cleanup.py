"""The integration fixtures remove what a test wrote in the shared test Redis."""

from __future__ import annotations

import re

import pytest
import redis

pytestmark = pytest.mark.integration
pytest_plugins = ("pytester",)

# A test that uses the settings but not the app, as one that starts pmrunner
# in a subprocess on them does; what it writes is what such a process writes.
INNER_TEST = """
import redis

def test_writes_under_its_prefix(settings):
    client = redis.Redis.from_url(settings.redis_url)
    client.set(settings.key_prefix + "sealing:fingerprint", "f")
    client.rpush(settings.queue_for(settings.default_network), "message")
    print("WROTE", settings.key_prefix, settings.queue_for(settings.default_network))
"""


def test_a_test_without_the_app_leaves_no_keys(pytester: pytest.Pytester, redis_url: str) -> None:
    pytester.makeconftest("from tests.integration.conftest import redis_url, settings  # noqa")
    pytester.makepyfile(INNER_TEST)
    result = pytester.runpytest_inprocess("-s", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    wrote = re.search(r"WROTE (\S+) (\S+)", result.stdout.str())
    assert wrote is not None
    prefix, queue = wrote.groups()
    client = redis.Redis.from_url(redis_url)
    assert list(client.scan_iter(f"{prefix}*")) == []
    assert not client.exists(queue)


# A worker in the test process, then a later test: nothing of the first is left
# writing under its prefix (its upkeep renews a lease every sweep interval, 1 s).
INNER_WORKER_TESTS = """
import time

import redis

from tests.integration.conftest import in_process_worker

PREFIXES = []


def test_runs_a_worker(app, settings):
    PREFIXES.append(settings.key_prefix)
    with in_process_worker(app, [settings.queue_for(settings.default_network)], concurrency=1):
        time.sleep(1.5)


def test_after_it(redis_url):
    time.sleep(2.5)
    left = list(redis.Redis.from_url(redis_url).scan_iter(PREFIXES[0] + "*"))
    assert left == [], left
"""


def test_a_worker_in_the_test_process_stops_writing_when_its_test_ends(
    pytester: pytest.Pytester,
) -> None:
    pytester.makeconftest("from tests.integration.conftest import app, redis_url, settings  # noqa")
    pytester.makepyfile(INNER_WORKER_TESTS)
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=2)
